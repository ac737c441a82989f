"""Per-service counters kept cheaply on the hot path, rendered as Prometheus text.

Labels are bounded: the service name and the status class, never a raw path; an
endpoint's shadows by endpoint and version name.
``busy_seconds`` integrates busy replicas over time, so the autoscaler can take an
average over its refresh period instead of a noisy instant.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {running}")
        return out


@dataclass
class LaneStats:
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    latency: Histogram = field(default_factory=Histogram)
    queue_wait: Histogram = field(default_factory=Histogram)
    busy_seconds: float = 0.0
    queue_full: int = 0
    queue_timeouts: int = 0
    forwarded: int = 0  # requests handed to the worker that holds the slots

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
            "queued": len(route.lane.waiters),
            "inFlight": sum(b.in_flight for b in route.backends),
            "backend": route.backend,
            "requests": dict(stats.requests),
            "latencyCounts": list(stats.latency.counts),
            "latencySum": stats.latency.total,
            "queueFull": stats.queue_full,
            "queueTimeouts": stats.queue_timeouts,
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


_HELP = {
    "modelport_router_requests_total": ("counter", "Scoring requests answered, by status class."),
    "modelport_router_request_duration_seconds": ("histogram", "Time from request to answer."),
    "modelport_router_queue_wait_seconds": (
        "histogram",
        "Time requests waited for a free replica.",
    ),
    "modelport_router_queue_rejections_total": (
        "counter",
        "Requests refused: queue full or deadline.",
    ),
    "modelport_router_forwarded_total": (
        "counter",
        "Requests handed to the router worker that holds the service's slots.",
    ),
    "modelport_router_replicas_ready": ("gauge", "Replicas taking requests."),
    "modelport_router_replicas_busy": ("gauge", "Replicas with a request in progress."),
    "modelport_router_queued_requests": ("gauge", "Requests waiting for a free replica."),
    "modelport_router_busy_replica_seconds_total": (
        "counter",
        "Integral of busy replicas over time.",
    ),
    "modelport_router_shadow_requests_total": (
        "counter",
        "Copies of live requests to a shadow version, by outcome against the live answer.",
    ),
    "modelport_router_shadow_latency_difference_seconds": (
        "gauge",
        "Shadow minus live answer time, summed over compared copies (agreed and disagreed).",
    ),
}


def render(table: RouteTable) -> str:
    snap = snapshot(table)["services"]
    sections: dict[str, list[str]] = {name: [] for name in _HELP}
    for name, route in table.routes.items():
        stats, s, svc = route.lane.stats, snap[name], f'service="{name}"'
        for cls, count in stats.requests.items():
            sections["modelport_router_requests_total"].append(
                f'modelport_router_requests_total{{{svc},code="{cls}"}} {count}'
            )
        sections["modelport_router_request_duration_seconds"] += stats.latency.lines(
            "modelport_router_request_duration_seconds", svc
        )
        sections["modelport_router_queue_wait_seconds"] += stats.queue_wait.lines(
            "modelport_router_queue_wait_seconds", svc
        )
        rejections = sections["modelport_router_queue_rejections_total"]
        metric = "modelport_router_queue_rejections_total"
        rejections.append(f'{metric}{{{svc},reason="full"}} {stats.queue_full}')
        rejections.append(f'{metric}{{{svc},reason="deadline"}} {stats.queue_timeouts}')
        sections["modelport_router_forwarded_total"].append(
            f"modelport_router_forwarded_total{{{svc}}} {stats.forwarded}"
        )
        sections["modelport_router_replicas_ready"].append(
            f"modelport_router_replicas_ready{{{svc}}} {s['ready']}"
        )
        sections["modelport_router_replicas_busy"].append(
            f"modelport_router_replicas_busy{{{svc}}} {s['busy']}"
        )
        sections["modelport_router_queued_requests"].append(
            f"modelport_router_queued_requests{{{svc}}} {s['queued']}"
        )
        sections["modelport_router_busy_replica_seconds_total"].append(
            f"modelport_router_busy_replica_seconds_total{{{svc}}} {s['busySecondsTotal']:.6f}"
        )
    for name, endpoint in table.endpoints.items():
        for shadow in endpoint.shadows:
            labels, c = f'endpoint="{name}",version="{shadow.version}"', shadow.counters
            outcomes = {
                "agreed": c.agreed,
                "disagreed": c.compared - c.agreed,
                "error": c.errors,
                "dropped": c.dropped,
            }
            metric = "modelport_router_shadow_requests_total"
            sections[metric] += [
                f'{metric}{{{labels},outcome="{k}"}} {n}' for k, n in outcomes.items()
            ]
            metric = "modelport_router_shadow_latency_difference_seconds"
            difference = c.shadow_seconds - c.live_seconds
            sections[metric].append(f"{metric}{{{labels}}} {difference:.6f}")
    out = []
    for metric, lines in sections.items():
        kind, text = _HELP[metric]
        out += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", *lines]
    return "\n".join(out) + "\n"
