from __future__ import annotations

import pytest

from modelport.autoscale.policy import (
    AutoscaleSettings,
    Observation,
    PolicyState,
    decide,
    needed_replicas,
    replicas_for,
)

S = AutoscaleSettings(min_replicas=1, max_replicas=10, target_utilization=0.7, down_window_s=60)


def obs(busy: float, queued: int = 0, ready: int = 1, now: float = 0.0) -> Observation:
    return Observation(now=now, ready=ready, busy=busy, queued=queued)


@pytest.mark.parametrize(
    ("busy", "queued", "needed"),
    [
        (0, 0, 1),
        (0.7, 0, 1),
        (0.71, 0, 2),
        (1.4, 0, 2),
        (2, 0, 3),
        (1, 6, 10),
        (8, 0, 10),
        (50, 9, 10),
    ],
)
def test_needed_is_the_smallest_count_under_the_target(
    busy: float, queued: int, needed: int
) -> None:
    assert needed_replicas(S, obs(busy, queued)) == needed


def test_queued_demand_is_in_replicas_of_its_concurrency() -> None:
    wide = AutoscaleSettings(max_concurrent=4, target_utilization=1.0)
    assert needed_replicas(wide, obs(busy=1, queued=8)) == 3


def test_bounds() -> None:
    narrow = AutoscaleSettings(min_replicas=2, max_replicas=3)
    assert needed_replicas(narrow, obs(0)) == 2 and needed_replicas(narrow, obs(9)) == 3
    decision = decide(narrow, obs(0), PolicyState(replicas=1))
    assert decision.replicas == 2 and decision.reason == "scale up"


def test_up_at_once() -> None:
    decision = decide(S, obs(busy=4, ready=2), PolicyState(replicas=2))
    assert (decision.replicas, decision.reason) == (6, "scale up")
    assert decision.utilization == 2.0


def test_down_only_after_the_window_and_to_the_window_peak() -> None:
    state = PolicyState(replicas=6)
    d = decide(S, obs(busy=0.5, ready=6, now=100), state)
    assert (d.replicas, d.reason) == (6, "hold") and d.state.low_since == 100
    d = decide(S, obs(busy=2.5, ready=6, now=130), d.state)  # needs 4 for a moment
    assert d.replicas == 6 and d.state.low_peak == 4
    d = decide(S, obs(busy=0.1, ready=6, now=159.9), d.state)
    assert d.replicas == 6
    d = decide(S, obs(busy=0.1, ready=6, now=160), d.state)
    assert (d.replicas, d.reason) == (4, "scale down") and d.state.low_since is None


def test_a_return_to_the_current_need_resets_the_window() -> None:
    d = decide(S, obs(busy=0.2, ready=3, now=0), PolicyState(replicas=3))
    assert d.state.low_since == 0
    d = decide(S, obs(busy=1.5, ready=3, now=30), d.state)  # 3 needed again
    assert d.state.low_since is None
    d = decide(S, obs(busy=0.2, ready=3, now=70), d.state)
    assert d.replicas == 3 and d.state.low_since == 70


def test_steady_load_does_not_oscillate() -> None:
    state, counts = PolicyState(replicas=1), []
    for second in range(300):
        busy = min(8.0, float(state.replicas))  # 8 closed-loop clients keep up to 8 busy
        queued = max(0, 8 - state.replicas)
        d = decide(S, obs(busy, queued, ready=state.replicas, now=second), state)
        state = d.state
        counts.append(d.replicas)
    assert counts[-1] == 10 and len(set(counts[5:])) == 1


def test_capacity_formula_of_the_v1_docs() -> None:
    concurrent, replicas = replicas_for(
        rps=20, latency_s=10, target_utilization=0.7, max_concurrent=1
    )
    assert round(concurrent, 2) == 285.71 and replicas == 286
    assert replicas_for(10, 1, 1.0, 5) == (10.0, 2)


def test_a_lowered_maximum_scales_down_at_once_without_the_window() -> None:
    lowered = AutoscaleSettings(min_replicas=1, max_replicas=4, down_window_s=60)
    obs = Observation(now=100.0, ready=8, busy=2.0, queued=0)
    decision = decide(lowered, obs, PolicyState(8))
    assert (decision.replicas, decision.reason) == (4, "scale down")
    # the same demand under the old maximum waits for the window
    assert decide(S, obs, PolicyState(8)).reason == "hold"
