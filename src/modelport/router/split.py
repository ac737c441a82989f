"""Which version of an endpoint takes a request: pure decisions, no I/O.

:class:`Split` deals requests by smooth weighted round-robin: after any number of
requests every version has had its share to within one request (never random drift),
and versions are interleaved rather than served in runs.  :func:`sticky` gives a key
(a user id, a session) always the same version while the weights hold: keys hash into
buckets, and :func:`buckets` deals the buckets so that a change of weights moves only
the buckets it must, from the versions that shrink to those that grow.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


class Split:
    """``weights``: (version, weight) pairs; versions with weight 0 are never picked."""

    __slots__ = ("_current", "_names", "_total", "_weights")

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        kept = [(name, w) for name, w in weights if w > 0]
        if not kept:
            raise ValueError("a split needs a version with a weight above 0")
        self._names = [name for name, _ in kept]
        self._weights = [w for _, w in kept]
        self._total = sum(self._weights)
        self._current = [0] * len(kept)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{n}={w}" for n, w in zip(self._names, self._weights, strict=True))
        return f"<Split {pairs}>"

    def pick(self) -> str:
        current, weights = self._current, self._weights
        best = 0
        for i, weight in enumerate(weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self._names[best]


BUCKETS = 1000  # a key's place: its hash modulo this; each bucket belongs to one version


def buckets(weights: Sequence[tuple[str, int]], previous: Sequence[str] | None = None) -> list[str]:
    """Which version each bucket belongs to, close to the weights (to 1 bucket in 1000).

    Given the table the last weights made, only as many buckets as the change needs move,
    and only from versions that shrink to versions that grow: a key stays with its
    version while that version keeps its share.
    """
    wanted = _apportion(weights, BUCKETS)
    table: list[str | None] = list(previous) if previous and len(previous) == BUCKETS else []
    if not table:
        table = [None] * BUCKETS
    held: dict[str, int] = dict.fromkeys(wanted, 0)
    for i, owner in enumerate(table):  # keep what still fits, free the rest
        if owner in held and held[owner] < wanted[owner]:
            held[owner] += 1
        else:
            table[i] = None
    short = [
        name for name, _ in weights if name in wanted for _ in range(wanted[name] - held[name])
    ]
    free = (i for i, owner in enumerate(table) if owner is None)
    for name, i in zip(short, free, strict=True):
        table[i] = name
    return [owner or "" for owner in table]


def sticky(key: bytes, table: Sequence[str]) -> str:
    """The version ``key`` belongs to under ``table`` (from :func:`buckets`)."""
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return table[int.from_bytes(digest, "big") % len(table)]


def _apportion(weights: Sequence[tuple[str, int]], seats: int) -> dict[str, int]:
    """``seats`` dealt in proportion to the weights (largest remainder)."""
    kept = [(name, w) for name, w in weights if w > 0]
    total = sum(w for _, w in kept)
    if not total:
        raise ValueError("a split needs a version with a weight above 0")
    exact = [(name, seats * w / total) for name, w in kept]
    dealt = {name: math.floor(x) for name, x in exact}
    order = sorted(exact, key=lambda e: e[1] - math.floor(e[1]), reverse=True)
    for name, _ in order[: seats - sum(dealt.values())]:
        dealt[name] += 1
    return dealt
