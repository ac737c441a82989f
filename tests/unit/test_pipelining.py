"""When a replica may take a request behind a running one (router/pipelining.py)."""

from __future__ import annotations

import asyncio

from modelport.router import pipelining
from modelport.router.stats import snapshot
from modelport.router.table import Backend, Route, RouteTable, build_table


def _table(cap: int = 1, wait_ms: int = 500, **svc: object) -> RouteTable:
    entry = {"replicas": [["127.0.0.1", 1000]], "maxConcurrent": cap, "maxWaitMs": wait_ms}
    return build_table({"services": {"s": {**entry, **svc}}}, RouteTable())


def _fast(route: Route) -> Backend:
    backend = route.backends[0]
    for _ in range(pipelining.MIN_SAMPLES):
        backend.answered(0.001, route.pipeline_limit_s)
    return backend


def test_the_limit_is_a_tenth_of_the_queue_deadline_and_the_switch_turns_it_off() -> None:
    assert _table(wait_ms=500).routes["s"].pipeline_limit_s == 0.05
    assert _table(pipelining=False).routes["s"].pipeline_limit_s == 0.0
    assert not pipelining.allows([0.001] * 32, 0.0)


def test_a_replica_is_trusted_after_enough_fast_answers_and_one_slow_one_ends_it() -> None:
    assert not pipelining.allows([0.001] * (pipelining.MIN_SAMPLES - 1), 0.05)
    assert pipelining.allows([0.001] * pipelining.MIN_SAMPLES, 0.05)
    route = _table().routes["s"]
    backend = _fast(route)
    assert backend.fast
    backend.answered(0.2, route.pipeline_limit_s)  # one slow run()
    assert not backend.fast
    for _ in range(pipelining.WINDOW - 1):
        backend.answered(0.001, route.pipeline_limit_s)
        assert not backend.fast  # the slow one is still among the last WINDOW
    backend.answered(0.001, route.pipeline_limit_s)
    assert backend.fast


def test_queued_requests_go_behind_running_ones_up_to_twice_the_cap_only() -> None:
    async def go() -> tuple[list[bool], int, dict[str, object]]:
        route = _table(cap=2, wait_ms=5000).routes["s"]
        backend = _fast(route)
        assert route.try_acquire() is backend and route.try_acquire() is backend
        loop = asyncio.get_running_loop()
        waiters = [route.enqueue(loop) for _ in range(3)]
        route.dispatch(pipe=lambda b: True)
        stats = snapshot(RouteTable(1, {"s": route}))["services"]["s"]
        return [w.future.done() for w in waiters], backend.in_flight, stats

    done, in_flight, stats = asyncio.run(go())
    assert done == [True, True, False] and in_flight == 4
    # Two execute; the two behind them still count as queued, as the third does.
    assert stats["inFlight"] == 2 and stats["queued"] == 3 and stats["busy"] == 1


def test_no_pipelining_for_a_slow_replica_a_switched_off_service_or_no_connection() -> None:
    async def go(route: Route, fast: bool, pipe: bool) -> bool:
        backend = route.backends[0]
        if fast:
            _fast(route)
        assert route.try_acquire() is backend
        waiter = route.enqueue(asyncio.get_running_loop())
        route.dispatch(pipe=lambda b: pipe)
        route.fail_waiters(LookupError("s"))
        return waiter.future.done() and waiter.future.exception() is None

    assert asyncio.run(go(_table().routes["s"], fast=True, pipe=True))
    assert not asyncio.run(go(_table().routes["s"], fast=False, pipe=True))
    assert not asyncio.run(go(_table(pipelining=False).routes["s"], fast=True, pipe=True))
    assert not asyncio.run(go(_table().routes["s"], fast=True, pipe=False))


def test_the_per_service_key_reaches_the_plan() -> None:
    from modelport.compute.plan import plan

    def planned(dc: dict[str, object]) -> bool:
        spec = {"deploymentConfig": dc, "inferenceConfig": {"entryScript": "score.py"}}
        return plan({**spec, "models": []}).pipelining

    assert planned({"computeType": "aks"}) is True
    assert planned({"computeType": "aks", "pipeliningEnabled": False}) is False
    assert planned({"computeType": "aks", "pipeliningEnabled": True}) is True
