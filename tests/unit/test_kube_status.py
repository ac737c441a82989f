"""Pods to replica states, and EndpointSlices plus policies to a router table (pure)."""

from __future__ import annotations

import json
from typing import Any

from modelport.compute import shares
from modelport.compute.kubernetes import pods, routing
from modelport.compute.target import ReplicaState

CREATED = "2026-12-01T10:00:00Z"
T0 = pods.timestamp(CREATED) or 0.0


def _pod(
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    inits: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "svc-1-abc", "creationTimestamp": CREATED}
    if deleting:
        meta["deletionTimestamp"] = CREATED
    return {
        "metadata": meta,
        "status": {
            "podIP": "127.0.1.5",
            "conditions": conditions or [],
            "containerStatuses": containers or [],
            "initContainerStatuses": inits or [],
        },
    }


def _crash(restarts: int, message: str = "Traceback: ValueError: no model") -> dict[str, Any]:
    return {
        "name": "score",
        "restartCount": restarts,
        "ready": False,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 3, "message": message}},
    }


def test_a_ready_pod_is_a_ready_replica_at_its_address() -> None:
    status = pods.replica_status(_pod([{"type": "Ready", "status": "True"}]), 0, now=T0)
    assert (status.state, status.host, status.port) == (ReplicaState.READY, "127.0.1.5", 5001)


def test_an_unplaceable_pod_says_why_then_fails_after_five_minutes() -> None:
    why = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    pod = _pod(
        [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}]
    )
    soon = pods.replica_status(pod, 0, now=T0 + 10)
    assert soon.state == ReplicaState.UNSCHEDULABLE and soon.error == why
    late = pods.replica_status(pod, 0, now=T0 + 301)
    assert late.state == ReplicaState.FAILED
    assert late.error is not None and late.error.startswith("Couldn't Schedule because")
    assert "nvidia.com/gpu" in late.error


def test_init_crashes_fail_the_replica_on_the_third_start_with_the_traceback() -> None:
    crashing = pods.replica_status(_pod(containers=[_crash(1)]), 0, now=T0)
    assert crashing.state == ReplicaState.CRASHED and "exited with code 3" in (crashing.error or "")
    failed = pods.replica_status(_pod(containers=[_crash(2)]), 0, now=T0)
    assert failed.state == ReplicaState.FAILED
    assert "ValueError: no model" in (failed.error or "")
    # One that served before is restarting, not failed: the cluster keeps trying.
    again = pods.replica_status(_pod(containers=[_crash(5)]), 0, was_ready=True, now=T0)
    assert again.state == ReplicaState.CRASHED


def test_an_image_that_cannot_be_pulled_fails_at_once() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}
    pod = _pod(containers=[{"name": "score", "restartCount": 0, "state": waiting}])
    status = pods.replica_status(pod, 0, now=T0)
    assert status.state == ReplicaState.FAILED and "pull access denied" in (status.error or "")


def test_a_failing_staging_step_fails_the_replica_with_its_message() -> None:
    init = {
        "name": "stage",
        "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 4, "message": "score.py: sha256 mismatch"}},
    }
    status = pods.replica_status(_pod(inits=[init]), 0, now=T0)
    assert status.state == ReplicaState.FAILED and "sha256 mismatch" in (status.error or "")


def test_a_terminating_pod_is_stopping_and_was_ready_means_unhealthy() -> None:
    assert pods.replica_status(_pod(deleting=True), 0).state == ReplicaState.STOPPING
    unready = _pod([{"type": "Ready", "status": "False"}])
    assert pods.replica_status(unready, 0, was_ready=True).state == ReplicaState.UNHEALTHY
    assert pods.replica_status(unready, 0).state == ReplicaState.STARTING


def _slice(service: str, endpoints: list[tuple[str, bool | None, bool]]) -> dict[str, Any]:
    items = []
    for address, ready, terminating in endpoints:
        conditions: dict[str, Any] = {"terminating": terminating}
        if ready is not None:
            conditions["ready"] = ready
        items.append({"addresses": [address], "conditions": conditions})
    return {
        "metadata": {"name": f"{service}-x", "labels": {routing.SERVICE_NAME_LABEL: service}},
        "ports": [{"port": 5001}],
        "endpoints": items,
    }


def test_the_table_takes_ready_endpoints_of_the_generation_the_policy_names() -> None:
    policy = {"auth": True, "keyDigests": ["ab"], "maxConcurrent": 2, "backend": "svc-2"}
    config = {"metadata": {"name": "svc"}, "data": {routing.POLICY_KEY: json.dumps(policy)}}
    slices = [
        routing.endpoints_of(_slice("svc-1", [("127.0.1.1", True, False)])),
        routing.endpoints_of(
            _slice(
                "svc-2",
                [
                    ("127.0.1.3", True, False),
                    ("127.0.1.2", None, False),
                    ("127.0.1.4", False, False),
                    ("127.0.1.5", True, True),
                ],
            )
        ),
    ]
    found = routing.policy_of(config)
    assert found is not None
    table = routing.services_table({"svc": found}, [s for s in slices if s is not None])
    route = table["svc"]
    assert route["replicas"] == [["127.0.1.2", 5001], ["127.0.1.3", 5001]]
    assert route["maxConcurrent"] == 2 and route["starting"] is False
    assert route["backend"] == "svc-2"  # echoed in the router's stats: the switch has landed


def test_a_service_without_a_serving_generation_is_starting() -> None:
    table = routing.services_table({"svc": {"auth": True, "starting": True}}, [])
    assert table["svc"]["replicas"] == [] and table["svc"]["starting"] is True
    assert routing.policy_of({"metadata": {"name": "x"}, "data": {}}) is None
    assert routing.policy_of({"data": {routing.POLICY_KEY: "not json"}}) is None


def test_each_router_pod_takes_its_share_and_one_without_slots_forwards() -> None:
    router_slices = [
        routing.Endpoints("modelport-router", 8080, ("127.0.2.3", "127.0.2.1")),
        routing.Endpoints("svc-2", 5001, ("127.0.1.1",)),
    ]
    # This pod is not ready yet: it still takes its place among the routers.
    order = routing.routers(router_slices, "modelport-router", "127.0.2.2")
    assert order == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    policy = {"auth": False, "maxConcurrent": 2, "maxQueue": 90, "backend": "svc-2"}
    table = {"revision": 1, "services": routing.services_table({"svc": policy}, router_slices)}
    admins = [(a, 8081) for a in order]
    tables = [shares.worker_table(table, i, admins)["services"]["svc"] for i in range(3)]
    assert [t["replicas"][0][2] for t in tables[:2]] == [1, 1]  # two slots, two holders
    assert tables[2]["forwardTo"] == ["127.0.2.1", 8081]
    assert sum(t["maxQueue"] for t in tables[:2]) >= 90
