"""The threaded invoker (``MODELPORT_WORKERS`` > 1, maxConcurrentRequestsPerContainer > 1).

Each ``run()`` below waits on a barrier of the size the request names, shared by the
replica's worker threads, and reports the most calls it saw inside ``run()`` at once.
A barrier that N calls meet proves N ran together; one they cannot meet breaks at
its deadline and says so.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import run_concurrently
from tests.integration.replicas import Replica, running

WORKERS = 3

BARRIER = """
    import json, threading

    lock = threading.Lock()
    barriers = {}
    inside = 0
    peak = 0

    def init():
        pass

    def run(data):
        global inside, peak
        request = json.loads(data)
        if request.get("spin"):
            while True:
                pass
        with lock:
            inside += 1
            peak = max(peak, inside)
            barrier = barriers.setdefault(request["parties"], threading.Barrier(request["parties"]))
        try:
            barrier.wait(timeout=request["deadline_s"])
            met = True
        except threading.BrokenBarrierError:
            met = False
        finally:
            with lock:
                inside -= 1
        return {"met": met, "peak": peak}
"""


def meet(
    replica: Replica, parties: int, callers: int, deadline_s: float
) -> list[dict[str, object]]:
    def call() -> dict[str, object]:
        with httpx.Client(base_url=replica.url, timeout=60) as client:
            r = client.post("/score", json={"parties": parties, "deadline_s": deadline_s})
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

    return run_concurrently(call, callers)


def test_n_workers_run_n_calls_at_once(tmp_path: Path) -> None:
    with running(tmp_path, BARRIER, workers=WORKERS) as replica:
        results = meet(replica, parties=WORKERS, callers=WORKERS, deadline_s=20)
        assert all(r["met"] for r in results)
        assert max(r["peak"] for r in results) == WORKERS  # type: ignore[type-var]


def test_one_call_more_than_workers_waits_its_turn(tmp_path: Path) -> None:
    with running(tmp_path, BARRIER, workers=WORKERS) as replica:
        # A barrier for WORKERS + 1 that only that many calls at once could meet.
        results = meet(replica, parties=WORKERS + 1, callers=WORKERS + 1, deadline_s=2)
        assert not any(r["met"] for r in results)
        assert max(r["peak"] for r in results) == WORKERS  # type: ignore[type-var]


def test_the_scoring_timeout_answers_and_frees_the_workers(tmp_path: Path) -> None:
    with running(tmp_path, BARRIER, workers=WORKERS, timeout_ms=1000) as replica:

        def spin() -> httpx.Response:
            with httpx.Client(base_url=replica.url, timeout=60) as client:
                return client.post("/score", json={"spin": True})

        for r in run_concurrently(spin, WORKERS):
            assert r.status_code == 500
            assert r.json() == {"message": "Scoring timeout after 1000 ms"}
            assert r.headers["x-ms-run-function-failed"] == "True"
        # every worker was interrupted and is back: all of them meet at once again
        results = meet(replica, parties=WORKERS, callers=WORKERS, deadline_s=20)
        assert all(r["met"] for r in results)
