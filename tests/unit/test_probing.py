"""Probe decisions: initial delay, thresholds, readiness gating."""

from __future__ import annotations

from modelport.compute.local.probing import (
    ProbeSettings,
    ProbeState,
    Verdict,
    next_probe,
    observe,
    start,
)

SETTINGS = ProbeSettings(
    period_s=1.0, timeout_s=1.0, failure_threshold=3, success_threshold=2, initial_delay_s=5.0
)


def run(outcomes: dict[float, bool], until: float) -> list[tuple[float, bool, Verdict]]:
    """Probe on a fake clock; a probe at time t fails unless ``outcomes`` says otherwise."""
    state, now, seen = start(SETTINGS, 0.0), 0.0, []
    while now < until:
        probe = next_probe(SETTINGS, state, now)
        now = probe.at
        ok = next((v for t, v in sorted(outcomes.items()) if now >= t), False)
        now += 0 if ok else probe.timeout_s
        state, verdict = observe(SETTINGS, state, probe, ok, now)
        seen.append((probe.at, probe.counts, verdict))
        if verdict is Verdict.RESTART:
            break
    return seen


def test_nothing_counts_before_the_initial_delay() -> None:
    seen = run({}, until=4.9)
    assert seen and not any(counts for _, counts, _ in seen)
    assert all(v is Verdict.NONE for *_, v in seen)


def test_a_slow_init_inside_the_allowed_misses_becomes_ready() -> None:
    # init() answers from 7 s on: counted probes at 5 and 6 miss, the one at 7 passes.
    seen = run({7.0: True}, until=20)
    counted = [(t, v) for t, c, v in seen if c]
    assert [v for _, v in counted][:2] == [Verdict.NONE, Verdict.NONE]
    assert Verdict.READY in [v for *_, v in seen]
    assert Verdict.RESTART not in [v for *_, v in seen]


def test_only_threshold_misses_in_a_row_restart() -> None:
    seen = run({}, until=60)
    counted = [t for t, c, _ in seen if c]
    assert seen[-1][2] is Verdict.RESTART
    assert len(counted) == 3 and counted[0] >= 5.0  # at the delay, a period apart
    assert counted[1] - counted[0] >= SETTINGS.period_s


def test_a_ready_replica_leaves_rotation_on_a_miss_and_needs_success_threshold_back() -> None:
    state = ProbeState(started=0.0, ready=True, next_liveness=10.0)
    probe = next_probe(SETTINGS, state, 10.0)
    assert probe.counts and probe.at == 10.0
    state, verdict = observe(SETTINGS, state, probe, False, 11.0)
    assert verdict is Verdict.NOT_READY and not state.ready
    state, verdict = observe(SETTINGS, state, next_probe(SETTINGS, state, 11.0), True, 11.0)
    assert verdict is Verdict.NONE and not state.ready  # one pass of the two needed
    state, verdict = observe(SETTINGS, state, next_probe(SETTINGS, state, 12.0), True, 12.0)
    assert verdict is Verdict.READY and state.ready and state.misses == 0


def test_first_readiness_needs_one_pass_even_before_the_delay() -> None:
    state = start(SETTINGS, 0.0)
    probe = next_probe(SETTINGS, state, 0.3)
    assert not probe.counts and probe.timeout_s <= 0.5
    state, verdict = observe(SETTINGS, state, probe, True, 0.35)
    assert verdict is Verdict.READY and state.ready
    assert next_probe(SETTINGS, state, 0.4).at == 5.0  # liveness begins at the delay


def test_a_failed_quick_poll_waits_before_the_next() -> None:
    state = start(SETTINGS, 0.0)
    probe = next_probe(SETTINGS, state, 1.0)
    state, _ = observe(SETTINGS, state, probe, False, 1.0)  # refused at once
    again = next_probe(SETTINGS, state, 1.0)
    assert again.at >= 1.0 + 0.1 and not again.counts
    late = observe(SETTINGS, state, next_probe(SETTINGS, state, 4.95), False, 4.95)[0]
    assert next_probe(SETTINGS, late, 4.95).at == 5.0  # never past the counting probe
