"""How several router workers share the replicas: pure decisions, no I/O.

Each worker is its own process with its own slot accounting, so a replica's
``maxConcurrent`` slots are dealt out between the workers instead of each worker
assuming all of them: slot ``k`` of the service (replica ``k // cap``) goes to
worker ``k % workers``.  Totals per worker differ by one at most and no replica
gets more than its cap from all workers together.  When a service has fewer slots
than there are workers, a worker left with none forwards that service's requests
(already authenticated) to a worker that holds one, over that worker's admin port:
one more hop, and the cap still holds.

A batching replica (``"batching": true``, run() is ``@batched``) is not dealt out:
every worker may hand it a whole batch.  Split, a worker holding a few of its slots
could never fill a batch, and its requests would wait out the batch's latency bound
in the replica while more queued behind them.  The replica still runs one batch at a
time; what the other workers sent waits in it for the next.
"""

from __future__ import annotations

import functools
import itertools
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
        if svc.get("batching"):  # every worker may send each replica a whole batch
            services[name] = {**svc, "maxQueue": queue_part(svc, workers)}
            continue
        slots = len(replicas) * cap
        shares = slot_shares(len(replicas), cap, workers)[worker]
        # The queue is split between the workers that hold slots: the others forward.
        holders = min(workers, slots) or workers
        entry = {
            **svc,
            "replicas": [[h, p, s] for (h, p, *_), s in zip(replicas, shares, strict=True)],
            "maxQueue": queue_part(svc, holders),
        }
        if 0 < slots <= worker:  # workers 0 .. slots-1 hold one slot each
            entry["forwardTo"] = list(addresses[worker % slots])
        services[name] = entry
    return {**table, "services": services}


def queue_part(svc: dict[str, Any], holders: int) -> int:
    """One of ``holders`` workers' part of a service's queue bound."""
    return max(1, math.ceil(int(svc.get("maxQueue", 100)) / holders))


# Counters that add up across workers as they are: numbers, or lists and dicts of them
# (answers per status class, latency counts per bucket), added element by element.
SUMMED = ("busy", "busySecondsTotal", "queued", "inFlight")
COUNTED = (
    "requests",
    "latencyCounts",
    "latencySum",
    "queueFull",
    "queueTimeouts",
    "pipelined",
    "pipelineFailed",
    "queueWaitCounts",
    "queueWaitSum",
    "forwarded",
    "captureRows",
)


def merge_stats(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """One service view from every worker's counters: they add up, replicas do not.

    A replica shared by two workers may be busy in both at once, so busy replicas
    are capped at the ready ones.  A worker of an older router may lack the answer
    counters: what one has is kept.
    """
    services: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        for name, svc in snap["services"].items():
            total = services.get(name)
            if total is None:
                services[name] = dict(svc)
                continue
            for key in SUMMED:
                total[key] += svc[key]
            for key in COUNTED:
                if key in svc:
                    total[key] = add(total[key], svc[key]) if key in total else svc[key]
            total["ready"] = max(total["ready"], svc["ready"])
    for svc in services.values():
        svc["busy"] = min(svc["busy"], svc["ready"])
    merged = {
        "revision": min(s["revision"] for s in snapshots),
        "time": max(s["time"] for s in snapshots),
        "services": services,
    }
    bounds = next((s["latencyBounds"] for s in snapshots if "latencyBounds" in s), None)
    if bounds is not None:
        merged["latencyBounds"] = bounds
    endpoints = [s["endpoints"] for s in snapshots if "endpoints" in s]
    if endpoints:  # shadow counters, per endpoint and shadow version
        merged["endpoints"] = functools.reduce(add, endpoints)
    return merged


def add(a: Any, b: Any) -> Any:
    """``a + b`` for numbers, key by key for dicts, element by element for lists (new
    objects: the workers' snapshots are left as they were)."""
    if isinstance(a, dict):
        return {k: add(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in a | b}
    if isinstance(a, list):
        return [x + y for x, y in itertools.zip_longest(a, b, fillvalue=0)]
    return a + b
