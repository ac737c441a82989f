"""Autoscaling under a load step, with real replicas behind the router."""

from __future__ import annotations

import itertools
import textwrap
import threading
import time
from pathlib import Path

import httpx

from modelport import AksWebservice, InferenceConfig, Model, Webservice, Workspace
from tests.conftest import ServerProcess, wait_for

SLOW = """
    import time

    def init():
        pass

    def run(raw):
        time.sleep(0.05)
        return "ok"
"""


def test_load_step_scales_up_holds_then_returns_to_min(
    server: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "m.txt").write_text("m")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text(textwrap.dedent(SLOW))
    with Workspace.from_config(server.home) as ws:
        model = Model.register(ws, tmp_path / "m.txt", "slow")
        config = AksWebservice.deploy_configuration(
            autoscale_enabled=True,
            autoscale_min_replicas=1,
            autoscale_max_replicas=10,
            autoscale_target_utilization=70,
            autoscale_refresh_seconds=1,
            autoscale_scale_down_window_seconds=3,
            auth_enabled=False,
        )
        ic = InferenceConfig(entry_script="score.py", source_directory=tmp_path / "src")
        service = Model.deploy(ws, "slow-svc", [model], ic, config)
        service.wait_for_deployment()

        def replicas() -> list[dict[str, object]]:
            return list(Webservice(ws, "slow-svc").serialize()["replicas"])

        assert len(replicas()) == 1
        stop = threading.Event()
        statuses: list[int] = []

        def client() -> None:
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    statuses.append(c.post(service.scoring_uri, content=b"{}").status_code)

        clients = [threading.Thread(target=client) for _ in range(8)]
        for t in clients:
            t.start()
        try:
            # 8 busy replicas / 0.7 -> 12, clamped to the maximum of 10
            wait_for(
                lambda: sum(r["state"] == "Ready" for r in replicas()) == 10,
                timeout_s=60,
                what="ten ready replicas",
            )
            held_from = time.monotonic()
            counts = []
            while time.monotonic() - held_from < 4:  # longer than the scale-down window
                counts.append(len(replicas()))
                time.sleep(0.2)  # sampling the count, not waiting for anything
            assert set(counts) == {10}, counts  # steady load: no oscillation
        finally:
            stop.set()
            for t in clients:
                t.join(timeout=30)
        assert statuses.count(200) > 100
        wait_for(lambda: len(replicas()) == 1, timeout_s=60, what="the return to one replica")
        events = service.get_scaling_events()
        changes = [(e["fromReplicas"], e["toReplicas"], e["reason"]) for e in events]
        assert changes[0] == (1, 10, "scale up")
        downs = changes[1:]
        # down only, each step to the highest count needed in its window, ending at min
        assert downs and all(r == "scale down" and a > b for a, b, r in downs), changes
        assert [b for _, b, _ in downs][-1] == 1
        assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(changes))
        up = events[0]["inputs"]
        assert up["needed"] == 10 and up["target"] == 0.7 and up["max"] == 10
        assert up["busy"] > 0.5 and up["queued"] + up["busy"] >= 5
        assert all(e["inputs"]["windowSeconds"] == 3 for e in events)
