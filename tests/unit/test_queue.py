"""Per-replica slots and the FIFO queue, driven on a real event loop without sockets."""

from __future__ import annotations

import asyncio

import pytest

from modelport.router.table import (
    Backend,
    QueueFull,
    Route,
    RouteTable,
    WaitTimeout,
    build_table,
    release,
)


def _route(replicas: int = 1, cap: int = 1, wait_ms: int = 100, queue: int = 3) -> Route:
    doc = {"services": {"s": {"replicas": [["127.0.0.1", 1000 + i] for i in range(replicas)],
                              "maxConcurrent": cap, "maxWaitMs": wait_ms, "maxQueue": queue}}}  # fmt: skip
    return build_table(doc, RouteTable()).routes["s"]


def test_a_replica_never_gets_more_than_its_cap() -> None:
    route = _route(replicas=2, cap=2)
    taken = [route.try_acquire() for _ in range(5)]
    assert taken[4] is None and all(b is not None for b in taken[:4])
    assert sorted(b.in_flight for b in route.backends) == [2, 2]


def test_waiters_get_freed_slots_in_arrival_order() -> None:
    async def go() -> list[list[bool]]:
        route = _route(queue=5, wait_ms=5000)
        backend = route.try_acquire()
        assert backend is not None
        loop = asyncio.get_running_loop()
        waiters = [route.enqueue(loop) for _ in range(3)]
        served = []
        for _ in range(3):
            release(route, backend)
            route.dispatch()  # hands the slot over synchronously
            served.append([w.future.done() for w in waiters])
        return served

    assert asyncio.run(go()) == [[True, False, False], [True, True, False], [True, True, True]]


def test_deadline_is_enforced_while_the_replica_is_still_busy() -> None:
    async def go() -> tuple[WaitTimeout, int]:
        route = _route(wait_ms=50)
        assert route.try_acquire() is not None  # busy and stays busy
        waiter = route.enqueue(asyncio.get_running_loop())
        with pytest.raises(WaitTimeout) as info:
            await asyncio.wait_for(waiter.future, 2)
        return info.value, route.backends[0].in_flight

    timeout, in_flight = asyncio.run(go())
    assert 0.04 <= timeout.waited_s < 1.0 and timeout.queued == 0 and in_flight == 1


class EarlyTimers:
    """A loop whose timers fire 20 ms early, as a loop's cached clock can make them
    (by less): the deadline must still be the whole wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def create_future(self) -> asyncio.Future[object]:
        return self.loop.create_future()

    def call_later(self, delay: float, callback: object, *args: object) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay - 0.02), callback, *args)  # type: ignore[arg-type]


def test_a_timer_that_fires_early_does_not_cut_the_wait_short() -> None:
    async def go() -> WaitTimeout:
        route = _route(wait_ms=100)
        assert route.try_acquire() is not None
        waiter = route.enqueue(EarlyTimers(asyncio.get_running_loop()))  # type: ignore[arg-type]
        with pytest.raises(WaitTimeout) as info:
            await asyncio.wait_for(waiter.future, 2)
        return info.value

    assert asyncio.run(go()).waited_s >= 0.1


def test_a_full_queue_refuses_at_once() -> None:
    async def go() -> int:
        route = _route(queue=2, wait_ms=5000)
        route.try_acquire()
        loop = asyncio.get_running_loop()
        route.enqueue(loop)
        route.enqueue(loop)
        with pytest.raises(QueueFull) as info:
            route.enqueue(loop)
        route.fail_waiters(LookupError("s"))
        return info.value.queued

    assert asyncio.run(go()) == 2


def test_an_abandoned_waiter_leaves_without_using_a_slot() -> None:
    async def go() -> tuple[int, int, bool]:
        route = _route(queue=5, wait_ms=5000)
        backend = route.try_acquire()
        assert backend is not None
        loop = asyncio.get_running_loop()
        gone, stays = route.enqueue(loop), route.enqueue(loop)
        route.abandon(gone)  # its client disconnected
        release(route, backend)
        route.dispatch()
        return len(route.lane.waiters), backend.in_flight, stays.future.done()

    assert asyncio.run(go()) == (0, 1, True)


def test_a_slot_handed_to_a_leaving_waiter_is_given_back() -> None:
    async def go() -> int:
        route = _route(queue=5, wait_ms=5000)
        backend = route.try_acquire()
        assert backend is not None
        waiter = route.enqueue(asyncio.get_running_loop())
        release(route, backend)
        route.dispatch()  # the slot goes to the waiter ...
        route.abandon(waiter)  # ... whose client left in the same instant
        return backend.in_flight

    assert asyncio.run(go()) == 0


def test_new_replicas_in_a_table_update_take_queued_requests() -> None:
    async def go() -> tuple[bool, int]:
        first = build_table(
            {"services": {"s": {"replicas": [["h", 1]], "maxWaitMs": 5000}}}, RouteTable()
        )
        route = first.routes["s"]
        route.try_acquire()
        waiter = route.enqueue(asyncio.get_running_loop())
        second = build_table(
            {"services": {"s": {"replicas": [["h", 1], ["h", 2]], "maxWaitMs": 5000}}}, first
        )
        second.routes["s"].dispatch()
        got: Backend = await asyncio.wait_for(waiter.future, 1)
        return second.routes["s"].lane is route.lane, got.port

    assert asyncio.run(go()) == (True, 2)


def test_busy_time_is_integrated() -> None:
    route = _route()
    backend = route.try_acquire()
    assert backend is not None
    backend.busy_since -= 2.0  # as if it had been busy for two seconds
    release(route, backend)
    assert 2.0 <= route.lane.stats.busy_seconds < 2.5
