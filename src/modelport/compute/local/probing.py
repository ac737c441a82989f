"""Probe decisions for one replica, as Kubernetes and v1 define them: pure, no I/O.

Readiness gates traffic: a replica takes requests from its first answered probe
on, and leaves the rotation at a missed one until ``success_threshold`` probes in a
row pass again.  Liveness restarts: probing that counts starts ``initial_delay_s``
after the process started (a delay, not a start-up deadline), one probe every
``period_s`` with ``timeout_s`` each, and only ``failure_threshold`` misses in a
row restart the process.  Before the delay a starting replica is polled quickly
for readiness, and those polls never count against it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

READINESS_POLL_S = 0.1  # between quick readiness polls while starting
READINESS_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class ProbeSettings:
    period_s: float = 10.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_s: float = 310.0


@dataclass(frozen=True)
class ProbeState:
    started: float  # when the process started (monotonic seconds)
    ready: bool = False
    misses: int = 0  # liveness probes missed in a row
    passes: int = 0  # probes passed in a row
    recovering: bool = False  # a counting probe was missed: success_threshold applies
    next_readiness: float = 0.0  # a failed quick poll waits a little before the next
    next_liveness: float | None = None  # when the next counting probe is due


class Verdict(enum.Enum):
    NONE = "none"
    READY = "ready"
    NOT_READY = "not ready"
    RESTART = "restart"


@dataclass(frozen=True)
class Probe:
    """The next probe to make: when, with what timeout, and whether it counts."""

    at: float
    timeout_s: float
    counts: bool


def start(settings: ProbeSettings, now: float) -> ProbeState:
    return ProbeState(started=now, next_liveness=now + settings.initial_delay_s)


def next_probe(settings: ProbeSettings, state: ProbeState, now: float) -> Probe:
    due = state.next_liveness if state.next_liveness is not None else now
    if state.ready:
        return Probe(max(due, now), settings.timeout_s, counts=True)
    if due <= now:
        return Probe(now, settings.timeout_s, counts=True)
    # Starting: poll quickly for readiness, but never past a counting probe.
    at = min(max(now, state.next_readiness), due)
    if at >= due:
        return Probe(due, settings.timeout_s, counts=True)
    return Probe(at, min(READINESS_TIMEOUT_S, settings.timeout_s, due - at), counts=False)


def observe(
    settings: ProbeSettings, state: ProbeState, probe: Probe, ok: bool, now: float
) -> tuple[ProbeState, Verdict]:
    """The state after a probe's outcome, and what the supervisor must do."""
    if probe.counts:
        base = state.next_liveness if state.next_liveness is not None else now
        state = replace(state, next_liveness=max(base + settings.period_s, now))
    if ok:
        passes = state.passes + 1
        needed = settings.success_threshold if state.recovering else 1
        if state.ready or passes < needed:
            return replace(state, misses=0, passes=passes), Verdict.NONE
        return replace(state, misses=0, passes=passes, ready=True, recovering=False), Verdict.READY
    if not probe.counts:
        return replace(state, passes=0, next_readiness=now + READINESS_POLL_S), Verdict.NONE
    misses = state.misses + 1
    was_ready = state.ready
    state = replace(state, misses=misses, passes=0, ready=False, recovering=True)
    if misses >= settings.failure_threshold:
        return state, Verdict.RESTART
    return state, Verdict.NOT_READY if was_ready else Verdict.NONE
