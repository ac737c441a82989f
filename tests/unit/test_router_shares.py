"""How router workers share replica slots, and how their counters add up."""

from __future__ import annotations

import pytest

from modelport.compute.shares import merge_stats, slot_shares, worker_table
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
    assert max(totals) - min(totals) <= 1
    assert min(totals) >= 1 or replicas * cap < workers


def test_with_fewer_slots_than_workers_the_rest_forward_to_a_holder() -> None:
    assert slot_shares(2, 1, 3) == [[1, 0], [0, 1], [0, 0]]
    assert slot_shares(0, 1, 3) == [[], [], []]
    table = {"revision": 1, "services": {"svc": {"replicas": [["127.0.0.1", 1001]]}}}
    ports = [5000, 5001, 5002]
    tables = [worker_table(table, w, ports)["services"]["svc"] for w in range(3)]
    assert [t["replicas"][0][2] for t in tables] == [1, 0, 0]
    assert ["forwardTo" in t for t in tables] == [False, True, True]
    assert tables[1]["forwardTo"] == ["127.0.0.1", 5000] == tables[2]["forwardTo"]
    assert tables[0]["maxQueue"] == 100  # the one holder queues for all three
    empty = {"revision": 1, "services": {"svc": {"replicas": []}}}
    assert "forwardTo" not in worker_table(empty, 2, ports)["services"]["svc"]


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
    assert worker_table(table, 0, [5000]) is table
    tables = [worker_table(table, w, [5000, 5001]) for w in (0, 1)]
    routes = [build_table(t, RouteTable()).routes["svc"] for t in tables]
    assert [r.forward for r in routes] == [None, None]
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


def test_answer_classes_and_latency_counts_add_up_element_by_element() -> None:
    def snap(ok: int, counts: list[int], seconds: float) -> dict[str, object]:
        svc = {"ready": 1, "busy": 0, "busySecondsTotal": 0.0, "queued": 0, "inFlight": 0}
        svc |= {"requests": {"2xx": ok, "3xx": 0, "4xx": 1, "5xx": 0}}
        svc |= {"latencyCounts": counts, "latencySum": seconds}
        svc |= {"queueFull": 1, "queueTimeouts": ok}
        return {"revision": 2, "time": 1.0, "latencyBounds": [0.1, 1.0], "services": {"svc": svc}}

    first, second = snap(3, [1, 2, 0], 0.5), snap(4, [0, 3, 1], 2.0)
    svc = merge_stats([first, second])["services"]["svc"]
    assert svc["requests"] == {"2xx": 7, "3xx": 0, "4xx": 2, "5xx": 0}
    assert svc["latencyCounts"] == [1, 5, 1] and svc["latencySum"] == 2.5
    assert (svc["queueFull"], svc["queueTimeouts"]) == (2, 7)
    assert first["services"]["svc"]["latencyCounts"] == [1, 2, 0]  # type: ignore[index]
    assert merge_stats([first, second])["latencyBounds"] == [0.1, 1.0]
    # A worker of an older router has no such counters: the others' are kept.
    old = {"ready": 1, "busy": 0, "busySecondsTotal": 0.0, "queued": 0, "inFlight": 0}
    merged = merge_stats([{"revision": 2, "time": 1.0, "services": {"svc": old}}, second])
    assert merged["services"]["svc"]["requests"]["2xx"] == 4


def test_every_worker_gets_the_token_keys_and_each_route_its_audience() -> None:
    from modelport.store.signing import new_signing_key

    jwk = new_signing_key().public_jwk
    table = {
        "revision": 3,
        "services": {
            "tok": {
                "auth": True,
                "tokenAuth": True,
                "audience": "tok",
                "replicas": [["127.0.0.1", 9001]],
                "maxConcurrent": 2,
            }
        },
        "tokens": {"issuer": "modelport:ws", "keys": [jwk]},
    }
    for worker in range(3):
        mine = worker_table(table, worker, [1, 2, 3])
        assert mine["tokens"] == table["tokens"]
        built = build_table(mine, RouteTable())
        route = built.routes["tok"]
        assert route.token_auth and route.audience == "tok"
        assert route.verifier is built.verifier and built.verifier.keys is not None
        assert list(built.verifier.keys.keys) == [jwk["kid"]]
        # The same keys again: the verifier (and its cache) carries over to the next table.
        assert build_table(mine, built).verifier is built.verifier
