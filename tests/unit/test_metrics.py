"""Metric families from router snapshots and control-plane records (modelport/metrics.py)."""

from __future__ import annotations

from typing import Any

from modelport.compute.shares import merge_stats
from modelport.metrics import (
    SEPARATOR,
    ControlCounters,
    control_families,
    exposition,
    replica_families,
    router_families,
    routers_up,
    service_labels,
)
from modelport.spec.endpoint import SEPARATOR as SPEC_SEPARATOR
from modelport.spec.endpoint import service_name
from tests.prom import samples, value

BOUNDS = [0.01, 0.1, 1.0]


def worker(route: str, ok: int, latency: list[int], waits: list[int]) -> dict[str, Any]:
    svc = {
        "ready": 2,
        "busy": 1,
        "busySecondsTotal": 1.5,
        "queued": 3,
        "inFlight": 1,
        "requests": {"2xx": ok, "3xx": 0, "4xx": 1, "5xx": 0},
        "latencyCounts": latency,
        "latencySum": 0.5,
        "queueWaitCounts": waits,
        "queueWaitSum": 0.25,
        "queueFull": 1,
        "queueTimeouts": 2,
        "forwarded": 4,
    }
    return {"revision": 1, "time": 1.0, "latencyBounds": BOUNDS, "services": {route: svc}}


def test_an_endpoint_version_is_labelled_by_endpoint_and_version() -> None:
    assert SEPARATOR == SPEC_SEPARATOR
    assert service_labels(service_name("ep", "blue")) == ["ep", "blue"]
    assert service_labels("plain") == ["plain", ""]


def test_two_workers_add_up_into_one_scrape() -> None:
    merged = merge_stats(
        [
            worker("ep.blue", 3, [1, 2, 0, 0], [3, 0, 0, 0]),
            worker("ep.blue", 2, [0, 1, 1, 1], [2, 1, 0, 0]),
        ]
    )
    text = exposition(router_families(merged)).decode()
    labels = {"service": "ep", "version": "blue"}
    assert value(text, "modelport_router_requests_total", code="2xx", **labels) == 5
    assert value(text, "modelport_router_requests_total", code="4xx", **labels) == 2
    latency = "modelport_router_request_duration_seconds"
    assert value(text, f"{latency}_bucket", le="0.01", **labels) == 1
    assert value(text, f"{latency}_bucket", le="0.1", **labels) == 4
    assert value(text, f"{latency}_bucket", le="+Inf", **labels) == 6
    assert value(text, f"{latency}_count", **labels) == 6
    assert value(text, "modelport_router_queue_wait_seconds_count", **labels) == 6
    assert value(text, "modelport_router_queue_wait_seconds_sum", **labels) == 0.5
    assert value(text, "modelport_router_queue_rejections_total", reason="deadline", **labels) == 4
    assert value(text, "modelport_router_forwarded_total", **labels) == 8
    assert value(text, "modelport_router_replicas_ready", **labels) == 2  # replicas do not add
    assert value(text, "modelport_router_queued_requests", **labels) == 6


def test_control_families_count_decisions_and_replicas_by_state() -> None:
    counters = ControlCounters()
    for direction in ("up", "up", "down"):
        counters.decided("ep.green", direction)
    views = {"svc": [{"state": "Ready", "restarts": 2}, {"state": "Starting", "restarts": 1}]}
    text = exposition(control_families(counters, views)).decode()
    decisions = "modelport_autoscale_decisions_total"
    assert value(text, decisions, service="ep", version="green", direction="up") == 2
    assert value(text, decisions, service="ep", version="green", direction="down") == 1
    assert value(text, "modelport_replicas", service="svc", state="Ready") == 1
    assert value(text, "modelport_replica_restarts", service="svc", version="") == 3


def test_labels_come_from_a_fixed_set() -> None:
    text = exposition(router_families(worker("svc", 1, [1, 0, 0, 0], [1, 0, 0, 0]))).decode()
    names = {k for _, labels, _ in samples(text) for k in labels}
    assert names <= {"service", "version", "code", "reason", "outcome", "le"}


def test_a_target_whose_routers_did_not_answer_shows_as_down() -> None:
    text = exposition([routers_up({"local": True, "gpu-cluster": False})]).decode()
    assert value(text, "modelport_router_stats_up", target="local") == 1
    assert value(text, "modelport_router_stats_up", target="gpu-cluster") == 0


def replica(init: float | None, counts: list[int], written: int) -> dict[str, Any]:
    rows = {"written": written, "dropped": 1, "failed": 0}
    return {
        "initSeconds": init,
        "runBounds": BOUNDS,
        "runCounts": counts,
        "runSum": 0.5,
        "collectedRows": rows,
    }


def test_replica_counters_add_up_over_the_replicas_of_a_version() -> None:
    stats = {"ep.blue": [replica(2.0, [1, 0, 0, 1], 3), replica(0.5, [0, 2, 0, 0], 4)]}
    stats["quiet"] = []  # deployed, no replica answered: no init, no runs
    text = exposition(replica_families(stats)).decode()
    labels = {"service": "ep", "version": "blue"}
    assert value(text, "modelport_replica_init_duration_seconds", **labels) == 2.0
    runs = "modelport_replica_run_duration_seconds"
    assert value(text, f"{runs}_bucket", le="0.1", **labels) == 3
    assert value(text, f"{runs}_count", **labels) == 4
    assert value(text, f"{runs}_sum", **labels) == 1.0
    rows = "modelport_data_collection_rows_total"
    assert value(text, rows, outcome="written", **labels) == 7
    assert value(text, rows, outcome="dropped", **labels) == 2
    assert value(text, rows, service="quiet", outcome="written") == 0
    assert not [s for s in samples(text) if s[1].get("service") == "quiet" and "run" in s[0]]
