"""@batched: the decorator, the replica's grouping, and the cap the router reads."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from modelport import batched
from modelport.autoscale.policy import Observation, needed_replicas
from modelport.batching import BatchSettings, settings_of
from modelport.compute.plan import plan
from modelport.compute.shares import worker_table
from modelport.errors import ConfigError
from modelport.router.table import RouteTable, build_table
from modelport.runtime.batcher import Batcher, BatchFailed, take
from modelport.runtime.script import EntryScript, ScriptError
from modelport.spec.inference import batch_size


def test_the_decorator_marks_run_and_checks_its_numbers() -> None:
    @batched(max_batch_size=8, max_latency_ms=2)
    def run(inputs: list[str]) -> list[str]:
        return inputs

    assert settings_of(run) == BatchSettings(8, 2)
    assert run(["a"]) == ["a"]  # still callable as written
    for bad in ({"max_batch_size": 0}, {"max_batch_size": 2.5}, {"max_latency_ms": -1}):
        with pytest.raises(ValueError):
            batched(**bad)  # type: ignore[arg-type]


def test_take_sends_full_batches_at_once_and_the_rest_when_due() -> None:
    assert take([1, 2, 3], 2, running=False, due=False) == 2
    assert take([1], 2, running=False, due=False) == 0
    assert take([1], 2, running=False, due=True) == 1
    assert take([1, 2, 3], 2, running=True, due=True) == 0  # one batch at a time


def _gather(run: Any, items: list[Any], size: int = 4, latency_ms: float = 20) -> Any:
    async def go() -> tuple[list[Any], list[list[Any]]]:
        calls: list[list[Any]] = []

        async def recorded(inputs: list[Any]) -> Any:
            calls.append(list(inputs))
            return run(inputs)

        batcher = Batcher(BatchSettings(size, latency_ms), recorded)
        answers = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
        return answers, calls

    return asyncio.run(go())


def test_concurrent_inputs_are_grouped_up_to_the_size_in_order() -> None:
    answers, calls = _gather(lambda xs: [x * 10 for x in xs], [1, 2, 3, 4, 5, 6])
    assert answers == [10, 20, 30, 40, 50, 60]
    assert calls == [[1, 2, 3, 4], [5, 6]]


def test_an_output_that_is_an_exception_fails_its_input_only() -> None:
    answers, _ = _gather(lambda xs: [ValueError(x) if x == 2 else x for x in xs], [1, 2, 3])
    assert answers[0] == 1 and answers[2] == 3
    assert isinstance(answers[1], ValueError)


def test_run_raising_or_a_wrong_count_fails_the_whole_batch() -> None:
    def boom(xs: list[int]) -> list[int]:
        raise RuntimeError("model down")

    answers, _ = _gather(boom, [1, 2])
    assert all(isinstance(a, RuntimeError) for a in answers)
    answers, _ = _gather(lambda xs: xs[:1], [1, 2])
    assert all(isinstance(a, BatchFailed) for a in answers)


def test_a_lone_input_waits_at_most_the_latency_bound() -> None:
    async def go() -> float:
        async def echo(xs: list[int]) -> list[int]:
            return xs

        batcher = Batcher(BatchSettings(32, 30), echo)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(batcher.submit(7), 5) == 7
        return loop.time() - started

    assert 0.025 <= asyncio.run(go()) < 2.0


def test_with_no_latency_bound_an_idle_replica_sends_at_once_and_batches_fill_under_load() -> None:
    async def go() -> tuple[list[list[int]], int]:
        calls: list[list[int]] = []
        gate = asyncio.Event()

        async def held(xs: list[int]) -> list[int]:
            calls.append(list(xs))
            await gate.wait()  # the first batch runs until the rest have arrived
            return xs

        batcher = Batcher(BatchSettings(32, 0), held)
        first = asyncio.ensure_future(batcher.submit(0))
        await until(lambda: len(calls) == 1)  # sent alone: nothing else was there
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0)
        waiting = len(batcher.pending)
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), 5)
        return calls, waiting

    calls, waiting = asyncio.run(go())
    assert waiting == 5  # held while the first batch ran, then sent together
    assert calls == [[0], [1, 2, 3, 4, 5]]


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0)


SOURCE = """
from modelport import batched

@batched({args})
def run(inputs):
    return inputs
"""


@pytest.mark.parametrize(
    ("args", "size"),
    [("max_batch_size=16, max_latency_ms=3", 16), ("8", 8), ("", 32), ("max_latency_ms=1", 32)],
)
def test_the_control_plane_reads_the_batch_size_from_the_source(args: str, size: int) -> None:
    assert batch_size(SOURCE.format(args=args), "score.py") == size


def test_no_decorator_is_no_batch_and_a_computed_size_is_refused() -> None:
    assert batch_size("def run(data):\n    return data\n", "score.py") == 0
    with pytest.raises(ConfigError, match="int literal"):
        batch_size(SOURCE.format(args="max_batch_size=N"), "score.py")
    with pytest.raises(ConfigError, match="int literal"):
        batch_size(SOURCE.format(args="max_batch_size=0"), "score.py")


def test_a_batching_replica_gets_a_whole_batch_of_slots() -> None:
    spec = {"inferenceConfig": {"entryScript": "score.py"}, "models": []}
    dc = {"computeType": "aks", "maxConcurrentRequestsPerContainer": 2}
    assert plan({**spec, "deploymentConfig": dc}).slots == 2
    assert plan({**spec, "deploymentConfig": dc, "batchSize": 16}).slots == 16
    assert plan({**spec, "deploymentConfig": {"computeType": "local"}, "batchSize": 4}).slots == 4


def test_the_autoscaler_counts_queued_requests_in_whole_batches() -> None:
    spec = {"inferenceConfig": {"entryScript": "score.py"}, "models": []}
    dc = {"computeType": "aks", "autoScaler": {"autoscaleEnabled": True, "maxReplicas": 10}}
    plain = plan({**spec, "deploymentConfig": dc})
    batching = plan({**spec, "deploymentConfig": dc, "batchSize": 16})
    assert plain.autoscale is not None and batching.autoscale is not None
    # 32 requests waiting are 32 replicas' worth for run(), two for a batch of 16.
    busy = Observation(now=0.0, ready=1, busy=1.0, queued=32)
    assert needed_replicas(plain.autoscale, busy) == 10
    assert needed_replicas(batching.autoscale, busy) == math.ceil(3 / 0.7)


def test_every_router_worker_may_hand_a_batching_replica_a_whole_batch() -> None:
    replicas = [["127.0.0.1", 1001], ["127.0.0.1", 1002]]
    svc = {"replicas": replicas, "maxConcurrent": 4, "maxQueue": 90}
    ports = [5000, 5001, 5002]
    for batching, caps in ((False, [[2, 1], [1, 2], [1, 1]]), (True, [[4, 4]] * 3)):
        table = {"revision": 1, "services": {"svc": {**svc, "batching": batching}}}
        routes = [
            build_table(worker_table(table, w, ports), RouteTable()).routes["svc"] for w in range(3)
        ]
        assert [[b.cap for b in r.backends] for r in routes] == caps
        assert [r.forward for r in routes] == [None] * 3
        assert [r.max_queue for r in routes] == [30] * 3
    # One replica, three workers: split, two workers would forward; whole, none does.
    one = {"revision": 1, "services": {"svc": {**svc, "replicas": replicas[:1], "batching": True}}}
    assert all("forwardTo" not in worker_table(one, w, ports)["services"]["svc"] for w in (1, 2))


@pytest.mark.parametrize(
    "signature", ["run(inputs, request_headers)", "run(inputs: int)"], ids=["headers", "plain"]
)
def test_a_batched_run_with_request_headers_is_refused_at_load(
    tmp_path: Path, signature: str
) -> None:
    script = tmp_path / "batched_score.py"
    script.write_text(
        f"from modelport import batched\n\n@batched(4)\ndef {signature}:\n    return inputs\n"
    )
    if "request_headers" in signature:
        with pytest.raises(ScriptError, match="@batched"):
            EntryScript(script, None)
    else:
        assert EntryScript(script, None).batch == BatchSettings(4)
