"""The local target's GPUs: the inventory it is given and how devices are dealt (pure)."""

from __future__ import annotations

from modelport.compute.local import gpus


def test_the_inventory_is_what_the_server_was_given() -> None:
    assert gpus.inventory({"CUDA_VISIBLE_DEVICES": "0, 2,GPU-abc"}) == ("0", "2", "GPU-abc")
    assert gpus.inventory({"CUDA_VISIBLE_DEVICES": ""}) == ()
    assert gpus.inventory({"CUDA_VISIBLE_DEVICES": "-1"}) == ()
    assert gpus.inventory({"PATH": "/nonexistent"}) == ()  # no nvidia-smi: no GPU


def test_devices_are_dealt_in_order_and_never_twice() -> None:
    devices = ("0", "1", "2")
    assert gpus.pick(devices, {"0"}, 2) == ("1", "2")
    assert gpus.pick(devices, {"0", "2"}, 2) is None
    assert gpus.shortage(devices, set(), 1, 3) is None
    short = gpus.shortage(devices, {"1"}, 2, 2)
    assert short == (
        "not enough GPUs: 2 replica(s) of gpu_cores 2 need 4; this machine has 3, 2 free"
    )
    assert "this machine has none" in (gpus.shortage((), set(), 1, 1) or "")
