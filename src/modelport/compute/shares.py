"""How several router workers share the replicas: pure decisions, no I/O.

Each worker is its own process with its own slot accounting, so a replica's
``maxConcurrent`` slots are dealt out between the workers instead of each worker
assuming all of them: slot ``k`` of the service (replica ``k // cap``) goes to
worker ``k % workers``.  Totals per worker differ by one at most and no replica
gets more than its cap from all workers together.  When a service has fewer slots
than there are workers, a worker left with none forwards that service's requests
(already authenticated) to a worker that holds one, over that worker's admin port:
one more hop, and the cap still holds.
"""

from __future__ import annotations

import math
from typing import Any


def slot_shares(replicas: int, cap: int, workers: int) -> list[list[int]]:
    """``shares[worker][replica]``: how many of the replica's slots each worker holds."""
    shares = [[0] * replicas for _ in range(workers)]
    for k in range(replicas * cap):
        shares[k % workers][k // cap] += 1
    return shares


def worker_table(
    table: dict[str, Any], worker: int, admins: list[int] | list[tuple[str, int]]
) -> dict[str, Any]:
    """The route table one worker gets: its slots per replica and its part of the queue.

    ``admins`` lists every worker's admin port (on this machine) or address (router
    pods of a cluster), so a worker without slots for a service knows where to forward.
    """
    addresses = [a if isinstance(a, tuple) else ("127.0.0.1", a) for a in admins]
    workers = len(addresses)
    if workers == 1:
        return table
    services = {}
    for name, svc in table["services"].items():
        replicas = svc["replicas"]
        cap = int(svc.get("maxConcurrent", 1))
        slots = len(replicas) * cap
        shares = slot_shares(len(replicas), cap, workers)[worker]
        # The queue is split between the workers that hold slots: the others forward.
        holders = min(workers, slots) or workers
        entry = {
            **svc,
            "replicas": [[h, p, s] for (h, p, *_), s in zip(replicas, shares, strict=True)],
            "maxQueue": max(1, math.ceil(int(svc.get("maxQueue", 100)) / holders)),
        }
        if 0 < slots <= worker:  # workers 0 .. slots-1 hold one slot each
            entry["forwardTo"] = list(addresses[worker % slots])
        services[name] = entry
    return {**table, "services": services}


def merge_stats(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """One service view from every worker's counters: they add up, replicas do not.

    A replica shared by two workers may be busy in both at once, so busy replicas
    are capped at the ready ones.
    """
    services: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        for name, svc in snap["services"].items():
            total = services.get(name)
            if total is None:
                services[name] = dict(svc)
                continue
            for key in ("busy", "busySecondsTotal", "queued", "inFlight"):
                total[key] += svc[key]
            total["ready"] = max(total["ready"], svc["ready"])
    for svc in services.values():
        svc["busy"] = min(svc["busy"], svc["ready"])
    return {
        "revision": min(s["revision"] for s in snapshots),
        "time": max(s["time"] for s in snapshots),
        "services": services,
    }
