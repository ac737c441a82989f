"""Per-service counters kept cheaply on the hot path, as plain ints and floats.

They are rendered as Prometheus metrics only at scrape time, by
``modelport/metrics.py`` (prometheus_client), with bounded labels.
``busy_seconds`` integrates busy replicas over time, so the autoscaler can take an
average over its refresh period instead of a noisy instant.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelport.metrics import exposition, router_families

if TYPE_CHECKING:
    from modelport.router.table import RouteTable

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class LaneStats:
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    latency: Histogram = field(default_factory=Histogram)
    queue_wait: Histogram = field(default_factory=Histogram)
    busy_seconds: float = 0.0
    queue_full: int = 0
    queue_timeouts: int = 0
    forwarded: int = 0  # requests handed to the worker that holds the slots
    pipelined: int = 0  # requests sent behind a running one (router/pipelining.py)
    # Requests pipelined behind another that failed with that connection, unstarted.
    pipeline_failed: int = 0
    # Requests and responses captured (router/capture.py): handed to the writer, or
    # dropped because its buffer was full.
    capture: dict[str, int] = field(default_factory=lambda: {"taken": 0, "dropped": 0})

    def record(self, status: int, seconds: float) -> None:
        key = CLASSES[min(max(status // 100, 2), 5) - 2]
        self.requests[key] += 1
        self.latency.observe(seconds)


def snapshot(table: RouteTable) -> dict[str, Any]:
    """What the control plane reads: per service, ready/busy replicas, busy time and
    queue for the autoscaler; answers by status class and their latencies (counts per
    bucket of ``latencyBounds``, the last past them) to compare an endpoint's versions."""
    now = time.monotonic()
    services = {}
    for name, route in table.routes.items():
        busy = [b for b in route.backends if b.in_flight > 0]
        ongoing = sum(now - b.busy_since for b in busy)
        stats = route.lane.stats
        services[name] = {
            "ready": len(route.backends),
            "busy": len(busy),
            "busySecondsTotal": stats.busy_seconds + ongoing,
            # Requests pipelined behind running ones wait as the queue's do.
            "queued": len(route.lane.waiters) + sum(b.in_flight - b.executing for b in busy),
            "inFlight": sum(b.executing for b in busy),
            "backend": route.backend,
            "requests": dict(stats.requests),
            "latencyCounts": list(stats.latency.counts),
            "latencySum": stats.latency.total,
            "queueFull": stats.queue_full,
            "queueTimeouts": stats.queue_timeouts,
            "queueWaitCounts": list(stats.queue_wait.counts),
            "queueWaitSum": stats.queue_wait.total,
            "forwarded": stats.forwarded,
            "pipelined": stats.pipelined,
            "pipelineFailed": stats.pipeline_failed,
            "captureRows": dict(stats.capture),
        }
    endpoints = {
        name: {"shadows": {s.version: s.counters.as_json() for s in endpoint.shadows}}
        for name, endpoint in table.endpoints.items()
    }
    return {
        "revision": table.revision,
        "time": now,
        "latencyBounds": list(BUCKETS),
        "services": services,
        "endpoints": endpoints,
    }


def render(table: RouteTable) -> bytes:
    """This worker's counters in the Prometheus text format (``modelport/metrics.py``)."""
    return exposition(router_families(snapshot(table)))
