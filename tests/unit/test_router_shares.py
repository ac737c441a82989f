"""How router workers share replica slots, and how their counters add up."""

from __future__ import annotations

import pytest

from modelport.control.shares import merge_stats, slot_shares, worker_table
from modelport.router.table import RouteTable, build_table


@pytest.mark.parametrize(
    ("replicas", "cap", "workers"),
    [(1, 1, 1), (2, 1, 2), (3, 1, 2), (1, 4, 2), (5, 3, 4), (10, 1, 3), (4, 2, 8)],
)
def test_shares_never_exceed_a_replicas_cap_and_stay_balanced(
    replicas: int, cap: int, workers: int
) -> None:
    shares = slot_shares(replicas, cap, workers)
    assert len(shares) == workers and all(len(row) == replicas for row in shares)
    for r in range(replicas):
        assert sum(row[r] for row in shares) == cap
    totals = [sum(row) for row in shares]
    assert max(totals) - min(totals) <= 1 and min(totals) >= 1


def test_with_fewer_slots_than_workers_every_worker_still_gets_one() -> None:
    shares = slot_shares(2, 1, 3)
    assert shares == [[1, 0], [0, 1], [1, 0]]  # replica 0 is shared: it queues the extra
    assert slot_shares(0, 1, 3) == [[], [], []]


def test_each_worker_table_holds_its_shares_and_part_of_the_queue() -> None:
    table = {
        "revision": 7,
        "services": {
            "svc": {
                "auth": False,
                "replicas": [["127.0.0.1", 1001], ["127.0.0.1", 1002], ["127.0.0.1", 1003]],
                "maxConcurrent": 1,
                "maxQueue": 101,
            }
        },
    }
    assert worker_table(table, 0, 1) is table
    routes = [build_table(worker_table(table, w, 2), RouteTable()).routes["svc"] for w in (0, 1)]
    assert [[b.cap for b in r.backends] for r in routes] == [[1, 0, 1], [0, 1, 0]]
    assert [r.max_queue for r in routes] == [51, 51]
    # A worker only ever takes its own slots.
    taken = [routes[1].try_acquire() for _ in range(2)]
    assert taken[0] is not None and taken[0].port == 1002 and taken[1] is None


def test_counters_from_workers_add_up_and_busy_never_exceeds_ready() -> None:
    def snap(busy: int, seconds: float, queued: int, when: float) -> dict[str, object]:
        svc = {"ready": 2, "busy": busy, "busySecondsTotal": seconds}
        svc |= {"queued": queued, "inFlight": busy}
        return {"revision": 4, "time": when, "services": {"svc": svc}}

    merged = merge_stats([snap(2, 10.0, 3, 100.0), snap(1, 2.5, 1, 100.2)])
    svc = merged["services"]["svc"]
    assert (svc["ready"], svc["busy"], svc["queued"], svc["inFlight"]) == (2, 2, 4, 3)
    assert svc["busySecondsTotal"] == 12.5 and merged["time"] == 100.2
