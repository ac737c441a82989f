"""When the router may hand a replica its next request while one is executing.

A replica's cap limits how many requests it *executes* at once; a request sent
behind one that executes waits in the replica's socket (the runtime reads the next
request on a connection only after answering), so the replica does not idle one
router round trip between requests.  That is allowed only while the replica is
fast against the queue deadline: each of its last ``WINDOW`` answers (so its p99)
came within ``FRACTION`` of ``maxQueueWaitMs``, so no request waits behind a slow
one longer than it would have queued.  One slow answer turns it off at once.
"""

from __future__ import annotations

from collections.abc import Sequence

WINDOW = 32  # answers remembered per replica: over 32, the p99 is the slowest
MIN_SAMPLES = 8  # a new replica is not trusted before it answered this many
FRACTION = 0.1  # of the queue deadline


def limit_s(max_wait_s: float, enabled: bool) -> float:
    """The service time a replica must stay under to be pipelined; 0: never."""
    return max_wait_s * FRACTION if enabled else 0.0


def allows(recent: Sequence[float], limit: float) -> bool:
    """Whether a replica whose last service times are ``recent`` may be pipelined."""
    return limit > 0 and len(recent) >= MIN_SAMPLES and max(recent) < limit
