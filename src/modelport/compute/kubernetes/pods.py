"""What a pod's status means for modelport: pure decisions, no I/O.

A replica is Ready when its pod's Ready condition is; Starting while it is being
placed, staged or probed; Crashed while its container restarts; Failed when it gave
up: its ``init()`` failed ``CRASH_LIMIT`` times without the replica ever being
ready (the traceback is the container's termination message), its image cannot be
pulled, its staging step failed, or the scheduler could not place it for
``UNSCHEDULABLE_LIMIT_S`` (v1's five minutes).  Until then an unplaceable replica
says why, in the scheduler's words, within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelport.compute.target import ReplicaState, ReplicaStatus

CRASH_LIMIT = 3  # as the local target: three starts that never became ready
UNSCHEDULABLE_LIMIT_S = 300.0
UNSCHEDULABLE_MESSAGE = (
    "Couldn't Schedule because the kubernetes cluster didn't have available resources "
    "after trying for 00:05:00"
)
SCORE_CONTAINER = "score"
SCORE_PORT = 5001
_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_CONFIG_FAILURES = ("CreateContainerConfigError", "CreateContainerError")

Pod = Mapping[str, Any]


def timestamp(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _condition(pod: Pod, kind: str) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _statuses(pod: Pod, key: str) -> list[Mapping[str, Any]]:
    return list((pod.get("status") or {}).get(key) or [])


def unschedulable(pod: Pod) -> str | None:
    """The scheduler's reason this pod has no node, if it has none."""
    condition = _condition(pod, "PodScheduled")
    if condition is None or condition.get("status") != "False":
        return None
    if condition.get("reason") != "Unschedulable":
        return None
    return str(condition.get("message") or "no node fits the replica")


def _terminated_message(container: Mapping[str, Any]) -> str | None:
    for key in ("state", "lastState"):
        terminated = (container.get(key) or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            code = terminated.get("exitCode")
            message = (terminated.get("message") or "").strip()
            head = f"exited with code {code}"
            return f"{head}:\n{message}" if message else head
    return None


def _failure(pod: Pod, was_ready: bool) -> str | None:
    """Why this pod will never serve (it gave up), or None."""
    for init in _statuses(pod, "initContainerStatuses"):
        waiting = (init.get("state") or {}).get("waiting") or {}
        message = _terminated_message(init)
        if message and int(init.get("restartCount", 0)) + 1 >= CRASH_LIMIT:
            return f"staging the replica failed: {message}"
        if waiting.get("reason") in _PULL_FAILURES + _CONFIG_FAILURES:
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".strip()
    for container in _statuses(pod, "containerStatuses"):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _PULL_FAILURES + _CONFIG_FAILURES:
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".strip()
        message = _terminated_message(container)
        starts = int(container.get("restartCount", 0)) + 1
        down = (container.get("state") or {}).get("running") is None
        if message and down and not was_ready and starts >= CRASH_LIMIT:
            return f"the replica never became ready in {starts} starts; last {message}"
    return None


def _crashed(pod: Pod) -> str | None:
    for container in _statuses(pod, "initContainerStatuses") + _statuses(pod, "containerStatuses"):
        message = _terminated_message(container)
        if message and (container.get("state") or {}).get("running") is None:
            return message
    return None


def replica_status(
    pod: Pod, index: int, was_ready: bool = False, now: float | None = None
) -> ReplicaStatus:
    """One replica as the control plane sees it, from its pod (``was_ready``: it has
    been ready before, so not being ready now is a failing probe)."""
    now = time.time() if now is None else now
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    created = timestamp(meta.get("creationTimestamp"))
    restarts = sum(int(c.get("restartCount", 0)) for c in _statuses(pod, "containerStatuses"))
    base: dict[str, Any] = {
        "index": index,
        "host": status.get("podIP") or "",
        "port": SCORE_PORT,
        "restarts": restarts,
        "started_at": timestamp(status.get("startTime")),
    }
    ready = _condition(pod, "Ready")
    if meta.get("deletionTimestamp"):
        return ReplicaStatus(state=ReplicaState.STOPPING, **base)
    if ready is not None and ready.get("status") == "True":
        return ReplicaStatus(state=ReplicaState.READY, **base)
    reason = unschedulable(pod)
    if reason is not None:
        waited = now - created if created is not None else 0.0
        if waited >= UNSCHEDULABLE_LIMIT_S:
            return ReplicaStatus(
                state=ReplicaState.FAILED, error=f"{UNSCHEDULABLE_MESSAGE}: {reason}", **base
            )
        return ReplicaStatus(state=ReplicaState.UNSCHEDULABLE, error=reason, **base)
    failure = _failure(pod, was_ready)
    if failure is not None:
        return ReplicaStatus(state=ReplicaState.FAILED, error=failure, **base)
    crashed = _crashed(pod)
    if crashed is not None:
        return ReplicaStatus(state=ReplicaState.CRASHED, error=crashed, **base)
    state = ReplicaState.UNHEALTHY if was_ready else ReplicaState.STARTING
    return ReplicaStatus(state=state, **base)


def ordered(pods: list[Pod]) -> list[Pod]:
    """Oldest first (then by name), so a replica keeps its index while it lives."""
    return sorted(
        pods,
        key=lambda p: (
            (p.get("metadata") or {}).get("creationTimestamp") or "",
            p["metadata"]["name"],
        ),
    )
