"""The autoscaling policy as a pure function: settings, observation, state in; a decision out.

utilization = busy replicas / ready replicas.  The desired count is the smallest
that brings the demand (busy replicas plus queued requests, in replicas) to the
target utilization or under it, clamped to [min, max].  Up: at once.  Down: only
after a lower count has sufficed for the whole window, and then to the highest
count needed during that window, so a dip in load does not shed capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AutoscaleSettings:
    min_replicas: int = 1
    max_replicas: int = 10
    target_utilization: float = 0.7  # a fraction: the v1 percent / 100
    refresh_s: float = 1.0
    down_window_s: float = 60.0
    max_concurrent: int = 1


@dataclass(frozen=True)
class Observation:
    now: float
    ready: int
    busy: float  # average busy replicas over the last refresh period
    queued: int


@dataclass(frozen=True)
class PolicyState:
    replicas: int
    low_since: float | None = None  # since when a lower count has sufficed
    low_peak: int = 0  # the highest count needed since then


@dataclass(frozen=True)
class Decision:
    replicas: int
    state: PolicyState
    needed: int
    utilization: float
    reason: str

    @property
    def changed(self) -> bool:
        return self.reason != "hold"


def clamp(value: int, settings: AutoscaleSettings) -> int:
    return max(settings.min_replicas, min(settings.max_replicas, value))


def needed_replicas(settings: AutoscaleSettings, obs: Observation) -> int:
    demand = obs.busy + obs.queued / settings.max_concurrent
    # A hair under the exact ratio so float noise never asks for one replica more.
    return clamp(math.ceil(demand / settings.target_utilization - 1e-9), settings)


def decide(settings: AutoscaleSettings, obs: Observation, state: PolicyState) -> Decision:
    current = state.replicas
    needed = needed_replicas(settings, obs)
    utilization = obs.busy / obs.ready if obs.ready else 0.0
    if needed > current:
        return Decision(needed, PolicyState(needed), needed, utilization, "scale up")
    if current > settings.max_replicas:  # the maximum was lowered: no window for that
        top = settings.max_replicas
        return Decision(top, PolicyState(top), needed, utilization, "scale down")
    if needed == current:
        return Decision(current, PolicyState(current), needed, utilization, "hold")
    low_since = state.low_since if state.low_since is not None else obs.now
    peak = max(needed, state.low_peak if state.low_since is not None else needed)
    if obs.now - low_since >= settings.down_window_s:
        return Decision(peak, PolicyState(peak), needed, utilization, "scale down")
    waiting = replace(state, replicas=current, low_since=low_since, low_peak=peak)
    return Decision(current, waiting, needed, utilization, "hold")


def replicas_for(
    rps: float, latency_s: float, target_utilization: float, max_concurrent: int
) -> tuple[float, int]:
    """The v1 sizing formula: (concurrent requests, replicas)."""
    concurrent = rps * latency_s / target_utilization
    return concurrent, math.ceil(concurrent / max_concurrent - 1e-9)
