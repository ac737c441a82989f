"""Shadow versions: which live requests are mirrored, and how the answers compare.
Pure decisions and counters; the proxy sends the copies.

Mirroring is exact, not random: per live request each shadow is owed ``percent`` of
a copy and gets one whenever a whole copy is owed, so any 100 consecutive requests
mirror ``percent`` of them (to within one where it is a fraction).  At most
``limit`` copies are in flight per endpoint: one due beyond that is dropped and
counted.  Two answers agree when both are 2xx and their bodies are equal: as JSON,
numbers within a relative tolerance; as bytes where either is not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MILLION = 1_000_000  # percents are kept in parts per million: exact integer sums
MAX_IN_FLIGHT = 64  # copies in flight per endpoint: what mirroring may hold in memory
TOLERANCE = 1e-6


@dataclass(eq=False)
class ShadowCounters:
    """One shadow's counters, kept across route table updates.

    Every copy sent ends as a shadow error (not a 2xx answer, or none) or compared;
    the answer times are summed over the compared ones only.
    """

    mirrored: int = 0
    dropped: int = 0
    compared: int = 0
    agreed: int = 0
    errors: int = 0
    live_seconds: float = 0.0
    shadow_seconds: float = 0.0
    owed: int = 0  # parts per million of a copy owed to this shadow

    def as_json(self) -> dict[str, Any]:
        return {
            "mirrored": self.mirrored,
            "dropped": self.dropped,
            "compared": self.compared,
            "agreed": self.agreed,
            "shadowErrors": self.errors,
            "liveSeconds": self.live_seconds,
            "shadowSeconds": self.shadow_seconds,
        }


@dataclass(frozen=True, eq=False)
class Shadow:
    version: str
    route: str
    per_million: int  # the share of live requests copied to it
    counters: ShadowCounters


@dataclass(eq=False)
class InFlight:
    """An endpoint's copies not yet answered (kept across updates: they end later)."""

    count: int = 0


def per_million(percent: Any) -> int:
    value = float(percent)
    if not 0 <= value <= 100:
        raise ValueError(f"a shadow's percent is 0 to 100, not {percent!r}")
    return round(value * MILLION / 100)


def due(shadows: Sequence[Shadow], in_flight: InFlight, limit: int) -> list[Shadow]:
    """The shadows one live request is copied to (each counted mirrored, and in flight
    until :func:`settle`); a copy due beyond ``limit`` is counted dropped instead."""
    sent = []
    for shadow in shadows:
        counters = shadow.counters
        counters.owed += shadow.per_million
        if counters.owed < MILLION:
            continue
        counters.owed -= MILLION
        if in_flight.count >= limit:
            counters.dropped += 1
            continue
        in_flight.count += 1
        counters.mirrored += 1
        sent.append(shadow)
    return sent


def settle(
    counters: ShadowCounters,
    live: tuple[int, bytes],
    shadow: tuple[int, bytes] | None,
    seconds: tuple[float, float],
    tolerance: float,
) -> None:
    """Count one copy's outcome: ``shadow`` is its answer (None: it failed), ``seconds``
    the live and the shadow answer's times."""
    if shadow is None or not 200 <= shadow[0] < 300:
        counters.errors += 1
        return
    counters.compared += 1
    counters.live_seconds += seconds[0]
    counters.shadow_seconds += seconds[1]
    if agree(live, shadow, tolerance):
        counters.agreed += 1


def agree(live: tuple[int, bytes], shadow: tuple[int, bytes], tolerance: float) -> bool:
    """Both 2xx, and the bodies equal as JSON (numbers within ``tolerance``), or as
    bytes where either is not JSON."""
    (live_status, live_body), (shadow_status, shadow_body) = live, shadow
    if not (200 <= live_status < 300 and 200 <= shadow_status < 300):
        return False
    if live_body == shadow_body:  # the common case needs no parsing
        return True
    try:
        return same(json.loads(live_body), json.loads(shadow_body), tolerance)
    except (ValueError, RecursionError):  # not JSON (and the bytes differ), or too deep
        return False


def same(a: Any, b: Any, tolerance: float) -> bool:
    """Parsed JSON values alike: numbers ``a``, ``b`` when |a-b| <= tol * max(1, |a|, |b|);
    lists of the same length and dicts of the same keys, item by item; the rest equal."""
    if isinstance(a, bool) or isinstance(b, bool):  # JSON's true is no number
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or _close(a, b, tolerance)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _close(a: float, b: float, tolerance: float) -> bool:
    try:
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
    except OverflowError:  # integers past a float's range, and unequal
        return False
