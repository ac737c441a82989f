"""Versions side by side over a window, and the bounds a promotion holds: pure, no I/O.

The router's counters only grow (until it restarts): a window is the difference of two
snapshots of them.  Latency percentiles come from the histogram buckets, interpolated
inside the bucket the rank falls in, so they are as fine as the buckets (a few per
decade), which is enough to tell a version three times slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CLASSES = ("2xx", "3xx", "4xx", "5xx")
SHADOW_COUNTERS = (
    "mirrored",
    "dropped",
    "compared",
    "agreed",
    "shadowErrors",
    "liveSeconds",
    "shadowSeconds",
)


def _grown(new: float, old: float) -> float:
    """A counter's growth; one that shrank was reset (a router restart): all of it is new."""
    return new - old if new >= old else new


def route_window(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What one route's counters gained between two snapshots."""
    old = old or {}
    requests = {
        c: int(_grown(new.get("requests", {}).get(c, 0), old.get("requests", {}).get(c, 0)))
        for c in CLASSES
    }
    new_counts = list(new.get("latencyCounts") or [])
    old_counts = list(old.get("latencyCounts") or [0] * len(new_counts))
    if len(old_counts) != len(new_counts) or sum(old_counts) > sum(new_counts):
        old_counts = [0] * len(new_counts)
    return {
        "requests": requests,
        "latencyCounts": [n - o for n, o in zip(new_counts, old_counts, strict=True)],
        "latencySum": _grown(new.get("latencySum", 0.0), old.get("latencySum", 0.0)),
        "queueFull": int(_grown(new.get("queueFull", 0), old.get("queueFull", 0))),
        "queueTimeouts": int(_grown(new.get("queueTimeouts", 0), old.get("queueTimeouts", 0))),
    }


def percentile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram; None without observations."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            low = bounds[i - 1] if i > 0 else 0.0
            if i >= len(bounds):  # past the last bound: all we know is "more than it"
                return bounds[-1]
            return low + (bounds[i] - low) * (rank - seen) / count
        seen += count
    return bounds[-1]


def summary(window: dict[str, Any], bounds: Sequence[float]) -> dict[str, Any]:
    """Requests, errors by class, error rate (5xx), p50/p95/p99 (ms), queue rejections."""
    requests = window["requests"]
    total = sum(requests.values())
    counts = window["latencyCounts"]

    def ms(q: float) -> float | None:
        value = percentile(counts, bounds, q)
        return None if value is None else round(value * 1000, 3)

    return {
        "requests": total,
        "byClass": dict(requests),
        "errorRate": requests.get("5xx", 0) / total if total else 0.0,
        "p50Ms": ms(0.50),
        "p95Ms": ms(0.95),
        "p99Ms": ms(0.99),
        "meanMs": round(window["latencySum"] / sum(counts) * 1000, 3) if sum(counts) else None,
        "queueRejections": window["queueFull"] + window["queueTimeouts"],
    }


def shadow_window(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A shadow's comparison counters over the window, with its agreement rate and the
    mean latency difference (shadow minus live, ms) of the requests both answered."""
    old = old or {}
    got = {k: _grown(new.get(k, 0), old.get(k, 0)) for k in SHADOW_COUNTERS}
    compared = int(got["compared"])
    return {
        "mirrored": int(got["mirrored"]),
        "dropped": int(got["dropped"]),
        "compared": compared,
        "agreed": int(got["agreed"]),
        "shadowErrors": int(got["shadowErrors"]),
        "agreement": got["agreed"] / compared if compared else None,
        "latencyDeltaMs": (
            round((got["shadowSeconds"] - got["liveSeconds"]) / compared * 1000, 3)
            if compared
            else None
        ),
    }


@dataclass(frozen=True)
class Bounds:
    """How far a treatment may be from the control while it is promoted."""

    max_error_rate_delta: float = 0.01
    max_p99_ratio: float = 1.5
    min_requests: int = 20


def judged_quantile(requests: int) -> float:
    """The latency quantile a window of ``requests`` can judge: the p99 from 500 requests,
    below that the highest with five requests above it (p90 of 50, p80 of 25), so a
    request or two slowed by the machine never decide alone."""
    return min(0.99, max(0.5, 1 - 5 / requests)) if requests else 0.99


def broken(
    control: dict[str, Any],
    treatment: dict[str, Any],
    latency_bounds: Sequence[float],
    bounds: Bounds,
) -> list[str]:
    """The bounds the treatment breaks against the control (windows, see
    :func:`route_window`), each with its figures; empty while it holds or while either has
    too few requests to judge."""
    ours, theirs = summary(treatment, latency_bounds), summary(control, latency_bounds)
    if ours["requests"] < bounds.min_requests or theirs["requests"] < bounds.min_requests:
        return []
    out = []
    delta = ours["errorRate"] - theirs["errorRate"]
    if delta > bounds.max_error_rate_delta:
        out.append(
            f"error rate {ours['errorRate']:.1%} against the control's "
            f"{theirs['errorRate']:.1%}: {delta:+.1%}, over the allowed "
            f"{bounds.max_error_rate_delta:+.1%}"
        )
    q = judged_quantile(min(ours["requests"], theirs["requests"]))
    mine = percentile(treatment["latencyCounts"], latency_bounds, q)
    base = percentile(control["latencyCounts"], latency_bounds, q)
    if mine is not None and base:
        ratio = mine / base
        if ratio > bounds.max_p99_ratio:
            name = f"p{round(q * 100)}"
            out.append(
                f"{name} latency {mine * 1000:.1f} ms against the control's "
                f"{base * 1000:.1f} ms: {ratio:.2f}x, over the allowed "
                f"{bounds.max_p99_ratio:.2f}x"
                + ("" if q >= 0.99 else f" (the p99 is judged from 500 requests; {name} here)")
            )
    return out
