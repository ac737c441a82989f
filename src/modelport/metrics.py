"""Prometheus metric families from the router's counters and the control plane's records.

The router keeps plain ints and floats on its hot path (``router/stats.py``); only at
scrape time are they turned into metric families here and written out by
``prometheus_client``, so a request costs nothing more.  The same families serve a
router worker's admin ``/metrics`` (its own counters) and the workspace's metrics
port (every worker's counters added up, ``compute/shares.py``, plus the control
plane's).  Labels are bounded: ``service`` and ``version`` (an endpoint's version;
empty for a plain service), the status class, a reason or an outcome from a fixed
set; never a path, a key or a request id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
SEPARATOR = "."  # as ``spec.endpoint.SEPARATOR``: "endpoint.version" (a test pins them equal)
LABELS = ["service", "version"]
PREFIX = "modelport_router_"


def service_labels(route: str) -> list[str]:
    """``[service, version]`` of a route: an endpoint's version is "endpoint.version"."""
    service, _, version = route.partition(SEPARATOR)
    return [service, version]


def router_families(snapshot: dict[str, Any]) -> list[Metric]:
    """Families from a router stats snapshot (one worker's, or all of them merged)."""
    bounds = [float(b) for b in snapshot.get("latencyBounds", [])]
    out = _RouterFamilies()
    for route, svc in snapshot["services"].items():
        out.add(service_labels(route), svc, bounds)
    for endpoint, entry in snapshot.get("endpoints", {}).items():
        for version, counters in entry.get("shadows", {}).items():
            out.add_shadow([endpoint, version], counters)
    return out.families()


class _RouterFamilies:
    def __init__(self) -> None:
        p = PREFIX
        self.requests = CounterMetricFamily(
            p + "requests", "Scoring requests answered, by status class.", labels=[*LABELS, "code"]
        )
        self.latency = HistogramMetricFamily(
            p + "request_duration_seconds", "Time from request to answer.", labels=LABELS
        )
        self.queue_wait = HistogramMetricFamily(
            p + "queue_wait_seconds", "Time requests waited for a free replica.", labels=LABELS
        )
        self.rejections = CounterMetricFamily(
            p + "queue_rejections",
            "Requests refused with a 503: queue full or deadline passed.",
            labels=[*LABELS, "reason"],
        )
        self.forwarded = CounterMetricFamily(
            p + "forwarded",
            "Requests handed to the router worker that holds the service's slots.",
            labels=LABELS,
        )
        self.ready = GaugeMetricFamily(
            p + "replicas_ready", "Replicas taking requests.", labels=LABELS
        )
        self.busy = GaugeMetricFamily(
            p + "replicas_busy", "Replicas with a request in progress.", labels=LABELS
        )
        self.in_flight = GaugeMetricFamily(
            p + "in_flight_requests",
            "Requests sent to a replica and not yet answered.",
            labels=LABELS,
        )
        self.queued = GaugeMetricFamily(
            p + "queued_requests", "Requests waiting for a free replica.", labels=LABELS
        )
        self.busy_seconds = CounterMetricFamily(
            p + "busy_replica_seconds", "Integral of busy replicas over time.", labels=LABELS
        )
        self.capture = CounterMetricFamily(
            p + "capture_rows",
            "Requests captured for model data (captureSampleRate): taken, or dropped "
            "because the writer's buffer was full.",
            labels=[*LABELS, "outcome"],
        )
        self.shadow = CounterMetricFamily(
            p + "shadow_requests",
            "Copies of live requests to a shadow version, by outcome against the live answer.",
            labels=[*LABELS, "outcome"],
        )
        self.shadow_difference = GaugeMetricFamily(
            p + "shadow_latency_difference_seconds",
            "Shadow minus live answer time, summed over compared copies.",
            labels=LABELS,
        )

    def add(self, labels: list[str], svc: dict[str, Any], bounds: list[float]) -> None:
        for code, count in svc.get("requests", {}).items():
            self.requests.add_metric([*labels, code], count)
        for family, key in ((self.latency, "latency"), (self.queue_wait, "queueWait")):
            counts = svc.get(f"{key}Counts")
            if counts is not None:
                family.add_metric(labels, _buckets(bounds, counts), svc.get(f"{key}Sum", 0.0))
        self.rejections.add_metric([*labels, "full"], svc.get("queueFull", 0))
        self.rejections.add_metric([*labels, "deadline"], svc.get("queueTimeouts", 0))
        self.forwarded.add_metric(labels, svc.get("forwarded", 0))
        self.ready.add_metric(labels, svc["ready"])
        self.busy.add_metric(labels, svc["busy"])
        self.in_flight.add_metric(labels, svc.get("inFlight", 0))
        self.queued.add_metric(labels, svc["queued"])
        self.busy_seconds.add_metric(labels, svc["busySecondsTotal"])
        for outcome, count in svc.get("captureRows", {}).items():
            self.capture.add_metric([*labels, outcome], count)

    def add_shadow(self, labels: list[str], c: dict[str, Any]) -> None:
        outcomes = {
            "agreed": c["agreed"],
            "disagreed": c["compared"] - c["agreed"],
            "error": c["shadowErrors"],
            "dropped": c["dropped"],
        }
        for outcome, count in outcomes.items():
            self.shadow.add_metric([*labels, outcome], count)
        self.shadow_difference.add_metric(labels, c["shadowSeconds"] - c["liveSeconds"])

    def families(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]


def _buckets(bounds: list[float], counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs from counts per bucket (the last one past them)."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=False):
        running += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return out


@dataclass
class ControlCounters:
    """What the control plane counts itself: autoscaling decisions per service and way."""

    decisions: dict[tuple[str, str], int] = field(default_factory=dict)

    def decided(self, route: str, direction: str) -> None:
        key = (route, direction)
        self.decisions[key] = self.decisions.get(key, 0) + 1


def control_families(
    counters: ControlCounters, replicas: dict[str, list[dict[str, Any]]]
) -> list[Metric]:
    """Autoscaling decisions, and per service the replicas' states and restarts
    (``replicas``: route name -> the controller's replica views)."""
    decisions = CounterMetricFamily(
        "modelport_autoscale_decisions",
        "Autoscaler changes of the replica count, by direction.",
        labels=[*LABELS, "direction"],
    )
    # Every service shows both ways, at 0 until it scales, so a rate() has data.
    routes = sorted({route for route, _ in counters.decisions} | set(replicas))
    for route in routes:
        for direction in ("up", "down"):
            count = counters.decisions.get((route, direction), 0)
            decisions.add_metric([*service_labels(route), direction], count)
    states = GaugeMetricFamily(
        "modelport_replicas",
        "Replicas of the current deployment, by state.",
        labels=[*LABELS, "state"],
    )
    restarts = GaugeMetricFamily(
        "modelport_replica_restarts",
        "Restarts of the replicas now deployed (replicas replaced by a roll-out drop out).",
        labels=LABELS,
    )
    for route, views in sorted(replicas.items()):
        labels = service_labels(route)
        by_state: dict[str, int] = {}
        for view in views:
            by_state[view["state"]] = by_state.get(view["state"], 0) + 1
        for state, count in sorted(by_state.items()):
            states.add_metric([*labels, state], count)
        restarts.add_metric(labels, sum(int(v["restarts"]) for v in views))
    return [decisions, states, restarts]


def replica_families(stats: dict[str, list[dict[str, Any]]]) -> list[Metric]:
    """From each replica's own counters (``runtime/counters.py``; ``stats``: route name ->
    one JSON per replica that answered): the longest init(), run() times and collected
    rows, added up over the replicas now deployed (a replica gone takes its counts with
    it: ``rate()`` reads that as a reset)."""
    init = GaugeMetricFamily(
        "modelport_replica_init_duration_seconds",
        "The longest init() of the replicas now deployed.",
        labels=LABELS,
    )
    runs = HistogramMetricFamily(
        "modelport_replica_run_duration_seconds",
        "Time in run() (and its input and output handling), measured in the replica.",
        labels=LABELS,
    )
    rows = CounterMetricFamily(
        "modelport_data_collection_rows",
        "Rows given to ModelDataCollector: written, dropped (buffer full) or failed.",
        labels=[*LABELS, "outcome"],
    )
    for route, replicas in sorted(stats.items()):
        labels = service_labels(route)
        inits = [float(r["initSeconds"]) for r in replicas if r.get("initSeconds") is not None]
        if inits:
            init.add_metric(labels, max(inits))
        if replicas:
            counts = [sum(c) for c in zip(*(r["runCounts"] for r in replicas), strict=True)]
            bounds = [float(b) for b in replicas[0]["runBounds"]]
            runs.add_metric(labels, _buckets(bounds, counts), sum(r["runSum"] for r in replicas))
        for outcome in ("written", "dropped", "failed"):
            total = sum(int(r["collectedRows"][outcome]) for r in replicas)
            rows.add_metric([*labels, outcome], total)
    return [init, runs, rows]


def routers_up(answered: dict[str, bool]) -> Metric:
    """1 per compute target whose routers all answered this scrape, else 0."""
    family = GaugeMetricFamily(
        "modelport_router_stats_up",
        "Whether every router of the compute target answered this scrape.",
        labels=["target"],
    )
    for target, ok in sorted(answered.items()):
        family.add_metric([target], 1 if ok else 0)
    return family


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def exposition(families: Iterable[Metric]) -> bytes:
    """The Prometheus text format of ``families``, written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
