"""``@batched``: a run() that scores many inputs in one call (adaptive batching).

Beyond Azure ML v1, as BentoML, Ray Serve and Triton do it::

    from modelport import batched

    @batched(max_batch_size=32, max_latency_ms=5)
    def run(inputs):            # a list of request bodies (the text v1's run() gets)
        return [predict(x) for x in inputs]   # one output per input, in order

The replica groups concurrent requests: a batch goes to run() when it holds
``max_batch_size`` inputs or its first input has waited ``max_latency_ms``; one
batch runs at a time, and the next forms while it runs.  The router lets a
batching replica hold ``max_batch_size`` requests at once (it reads the decorator
from the entry script at deploy: give both numbers as literals).

An output that is an exception instance fails its own input only (a 500 with the
exception's message); run() raising fails every input of the batch.
This module is a base module: the runtime and the control plane both read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

ATTRIBUTE = "__modelport_batch__"
MAX_BATCH_SIZE = 1024  # the most requests one replica may be handed at once
MAX_LATENCY_MS = 10_000

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = 32
    max_latency_ms: float = 5.0

    def __post_init__(self) -> None:
        size, latency = self.max_batch_size, self.max_latency_ms
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
            raise ValueError(f"max_batch_size must be an int from 1 to {MAX_BATCH_SIZE}: {size!r}")
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise ValueError(f"max_latency_ms must be a number: {latency!r}")
        if not 0 <= latency <= MAX_LATENCY_MS:
            raise ValueError(f"max_latency_ms must be from 0 to {MAX_LATENCY_MS}: {latency!r}")


def batched(max_batch_size: int = 32, max_latency_ms: float = 5.0) -> Callable[[F], F]:
    """Mark run() as taking a list of inputs and returning a list of outputs."""
    settings = BatchSettings(max_batch_size, max_latency_ms)

    def mark(run: F) -> F:
        setattr(run, ATTRIBUTE, settings)
        return run

    return mark


def settings_of(run: Callable[..., Any]) -> BatchSettings | None:
    found = getattr(run, ATTRIBUTE, None)
    return found if isinstance(found, BatchSettings) else None
