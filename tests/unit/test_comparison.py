"""Versions compared over a window, the bounds a promotion holds, and the promotion's steps
against scripted router counters (pure functions and a fake store)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelport.control import comparison, promotion
from modelport.control.comparison import Bounds
from modelport.control.promotion import Promotion, PromotionSettings

BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]


def route(ok: int, errors: int = 0, counts: list[int] | None = None) -> dict[str, Any]:
    counts = counts or [0, 0, 0, ok + errors, 0, 0, 0, 0]
    return {
        "requests": {"2xx": ok, "3xx": 0, "4xx": 0, "5xx": errors},
        "latencyCounts": counts,
        "latencySum": 0.008 * sum(counts),
        "queueFull": 1,
        "queueTimeouts": 2,
    }


def test_percentiles_interpolate_inside_the_bucket_the_rank_falls_in() -> None:
    counts = [0, 0, 0, 100, 0, 0, 0, 0]  # all between 5 and 10 ms
    assert comparison.percentile(counts, BOUNDS, 0.5) == pytest.approx(0.0075)
    assert comparison.percentile(counts, BOUNDS, 0.99) == pytest.approx(0.00995)
    assert comparison.percentile([0] * 8, BOUNDS, 0.5) is None
    assert comparison.percentile([0] * 7 + [5], BOUNDS, 0.5) == 0.1  # past the last bound
    slow = [0, 0, 0, 0, 0, 100, 0, 0]  # 25 to 50 ms: three times and more
    assert (
        comparison.percentile(slow, BOUNDS, 0.99) / comparison.percentile(counts, BOUNDS, 0.99) > 3
    )


def test_a_window_is_what_the_counters_gained_and_a_reset_counts_whole() -> None:
    gained = comparison.route_window(route(10, 1), route(30, 1))
    assert gained["requests"] == {"2xx": 20, "3xx": 0, "4xx": 0, "5xx": 0}
    assert sum(gained["latencyCounts"]) == 20 and gained["queueFull"] == 0
    after_restart = comparison.route_window(route(50), route(5))
    assert after_restart["requests"]["2xx"] == 5 and sum(after_restart["latencyCounts"]) == 5
    summary = comparison.summary(comparison.route_window(None, route(90, 10)), BOUNDS)
    assert summary["requests"] == 100 and summary["errorRate"] == pytest.approx(0.1)
    assert summary["queueRejections"] == 3 and summary["p50Ms"] == pytest.approx(7.5)


def test_the_bounds_name_what_broke_with_the_figures() -> None:
    control = comparison.route_window(None, route(100))
    failing = comparison.route_window(None, route(80, 20))
    slow = comparison.route_window(None, route(100, counts=[0, 0, 0, 0, 0, 100, 0, 0]))
    bounds = Bounds(max_error_rate_delta=0.05, max_p99_ratio=2.0, min_requests=20)
    assert comparison.broken(control, control, BOUNDS, bounds) == []
    assert comparison.broken(control, failing, BOUNDS, bounds) == [
        "error rate 20.0% against the control's 0.0%: +20.0%, over the allowed +5.0%"
    ]
    (problem,) = comparison.broken(control, slow, BOUNDS, bounds)
    assert problem.startswith("p95 latency 48.8 ms against the control's 9.8 ms: 5.00x")
    assert "the p99 is judged from 500 requests" in problem
    few = comparison.route_window(None, route(5, 5))
    assert comparison.broken(control, few, BOUNDS, bounds) == []  # too few to judge yet


def test_a_request_or_two_slowed_by_the_machine_do_not_decide_alone() -> None:
    assert comparison.judged_quantile(500) == 0.99 and comparison.judged_quantile(50) == 0.9
    assert comparison.judged_quantile(5) == 0.5
    control = comparison.route_window(None, route(50))  # all between 5 and 10 ms
    two_slow = comparison.route_window(None, route(50, counts=[0, 0, 0, 48, 0, 0, 2, 0]))
    bounds = Bounds(max_p99_ratio=1.5, min_requests=20)
    assert comparison.broken(control, two_slow, BOUNDS, bounds) == []
    many_slow = comparison.route_window(None, route(50, counts=[0, 0, 0, 40, 0, 0, 10, 0]))
    assert comparison.broken(control, many_slow, BOUNDS, bounds)


def test_a_shadow_window_gives_agreement_and_the_latency_difference() -> None:
    old = {"mirrored": 10, "compared": 10, "agreed": 9, "liveSeconds": 1.0, "shadowSeconds": 1.5}
    new = {
        "mirrored": 30, "dropped": 1, "compared": 28, "agreed": 27, "shadowErrors": 2,
        "liveSeconds": 2.8, "shadowSeconds": 4.6,
    }  # fmt: skip
    got = comparison.shadow_window(old, new)
    assert got["mirrored"] == 20 and got["compared"] == 18 and got["agreed"] == 18
    assert got["agreement"] == 1.0 and got["latencyDeltaMs"] == pytest.approx(1300 / 18, abs=0.001)
    assert comparison.shadow_window(None, {})["agreement"] is None


class FakeStore:
    def __init__(self) -> None:
        self.traffic: list[int] = []
        self.final: tuple[Any, ...] | None = None
        self.events: list[tuple[str, str]] = []
        self.promotion: Any = "set"

    def update_version(self, name: str, version: str, changes: Any, *rules: Any) -> None:
        self.traffic.append(rules[0])
        if len(rules) > 1:
            self.final = rules

    def update(self, name: str, changes: dict[str, Any]) -> None:
        self.promotion = changes.get("promotion")

    def record_event(self, name: str, kind: str, message: str, data: dict[str, Any]) -> None:
        self.events.append((kind, message))


class FakeEndpoints:
    """Counters that grow on each read: the control always well, the treatment as told."""

    def __init__(self, treatment_errors: int = 0, treatment_requests: int = 10) -> None:
        self.store = FakeStore()
        self.reads = 0
        self.treatment = (treatment_requests, treatment_errors)

    async def _read(self) -> dict[str, Any]:
        self.reads += 1
        n, e = self.treatment
        return {
            "latencyBounds": BOUNDS,
            "services": {
                "ep.blue": route(10 * self.reads),
                "ep.green": route((n - e) * self.reads, e * self.reads),
            },
        }

    async def refresh(self, name: str) -> None:
        pass


def settings(**bounds: Any) -> PromotionSettings:
    return PromotionSettings("green", (10, 50, 100), 0.05, Bounds(**bounds))


def run(endpoints: FakeEndpoints, given: PromotionSettings) -> Promotion:
    async def go() -> Promotion:
        p = Promotion(endpoints, "ep", "blue", given)  # type: ignore[arg-type]
        p.start()
        assert p.task is not None
        await asyncio.wait_for(p.task, 10)
        return p

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promotion, "CHECK_EVERY_S", 0.01)


def test_a_good_treatment_is_stepped_up_and_made_default_and_control() -> None:
    endpoints = FakeEndpoints()
    done = run(endpoints, settings(min_requests=5))
    assert done.state == "Promoted"
    store = endpoints.store
    assert store.traffic == [10, 50, 100, 0] and store.final == (0, True, True)
    assert [k for k, _ in store.events] == ["step", "step", "step", "promoted"]
    assert store.promotion is None


def test_a_failing_treatment_is_rolled_back_at_once_with_the_figures() -> None:
    endpoints = FakeEndpoints(treatment_errors=3)
    done = run(endpoints, settings(min_requests=5, max_error_rate_delta=0.05))
    assert done.state == "RolledBack" and done.step == 1
    assert endpoints.store.traffic == [10, 0]  # the traffic went back to the control
    kind, message = endpoints.store.events[-1]
    assert kind == "rolledBack" and "error rate 30.0%" in message
    assert done.figures["treatment"]["errorRate"] == pytest.approx(0.3)


def test_a_step_with_too_little_traffic_to_judge_rolls_back() -> None:
    endpoints = FakeEndpoints(treatment_requests=0)
    done = run(endpoints, settings(min_requests=5))
    assert done.state == "RolledBack"
    assert "too little traffic to judge: 0 request(s) reached 'green'" in (done.reason or "")
