"""Groups concurrent requests into calls of a ``@batched`` run() (``modelport/batching.py``).

A batch is sent when it holds ``max_batch_size`` inputs, or when its first input
has waited ``max_latency_ms``; one batch runs at a time, and inputs that arrive
meanwhile are sent together as soon as it ends (they have waited already).  The
decision of what to send is :func:`take`, plain code apart from the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelport.batching import BatchSettings

log = logging.getLogger("modelport.runtime")


class BatchFailed(Exception):
    """run() raised, or did not return one output per input: every input fails."""


def take(pending: list[Any], size: int, running: bool, due: bool) -> int:
    """How many pending inputs to send now: none while a batch runs; a full batch at
    once; else all of them once the oldest is due."""
    if running or not pending:
        return 0
    if len(pending) >= size or due:
        return min(len(pending), size)
    return 0


class Batcher:
    def __init__(self, settings: BatchSettings, run: Callable[[list[Any]], Awaitable[Any]]) -> None:
        self.size = settings.max_batch_size
        self.latency_s = settings.max_latency_ms / 1000
        self.run = run
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self.running = False
        self.timer: asyncio.TimerHandle | None = None

    async def submit(self, item: Any) -> Any:
        """The output for ``item``; raises what failed it (an output that is an
        exception, or :class:`BatchFailed`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append((item, future))
        self._send(due=False)
        if self.pending and self.timer is None and not self.running:
            self.timer = loop.call_later(self.latency_s, self._send, True)
        return await future

    def _send(self, due: bool) -> None:
        count = take(self.pending, self.size, self.running, due)
        if not count:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending[:count], self.pending[count:]
        self.running = True
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            outputs = await self.run([item for item, _ in batch])
            if not isinstance(outputs, list | tuple) or len(outputs) != len(batch):
                raise BatchFailed(
                    f"a @batched run() must return a list of {len(batch)} outputs, one per "
                    f"input; it returned {_describe(outputs)}"
                )
        except BaseException as exc:  # every input of the batch fails alike
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), output in zip(batch, outputs, strict=True):
                if future.done():
                    continue
                if isinstance(output, Exception):
                    future.set_exception(output)
                else:
                    future.set_result(output)
        finally:
            self.running = False
            self._send(due=True)  # what came meanwhile has waited long enough


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"{len(value)} outputs"
    return f"a value of type {type(value).__qualname__}"
