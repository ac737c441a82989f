"""A generation's replica logs, each line after ``[<pod>] ``, read or followed.

Read: each pod's last lines (and those of the ``since`` window), pod after pod.
Followed: every pod's stream at once, lines passed on as they arrive, and the pod
list looked at again every ``RESCAN_S`` so a replica the autoscaler adds joins
(from its first line); a pod that goes ends its stream.  The pod names come from the
generation's watch, so following costs the API server one log stream per pod.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.pods import SCORE_CONTAINER
from modelport.errors import ModelportError

RESCAN_S = 2.0
QUEUED_LINES = 1000  # a slow reader holds the pods' streams back, not memory

Gone = Callable[[], Awaitable[bool]]


def _line(pod: str, text: str) -> bytes:
    return f"[{pod}] {text}\n".encode()


async def read(api: KubeAPI, pods: list[str], tail: int, since_s: int | None) -> str:
    parts: list[str] = []
    for name in pods:
        text = await api.logs(name, SCORE_CONTAINER, tail, since_s=since_s)
        parts.extend(f"[{name}] {line}" for line in text.splitlines())
    return "\n".join(parts)


async def follow(
    api: KubeAPI,
    pods: Callable[[], list[str]],
    tail: int,
    since_s: int | None,
    gone: Gone,
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUED_LINES)
    streams: dict[str, asyncio.Task[None]] = {}

    async def pump(pod: str, lines: int | None) -> None:
        try:
            async for text in api.follow_logs(pod, SCORE_CONTAINER, lines, since_s):
                await queue.put(_line(pod, text))
        except ModelportError as exc:
            await queue.put(_line(pod, f"(its log stream ended: {exc.message})"))

    def start(first: bool) -> None:
        for pod in pods():
            if pod not in streams:
                # The first pods show their last lines; one that joins later, all of its.
                streams[pod] = asyncio.create_task(pump(pod, tail if first else None))

    loop = asyncio.get_running_loop()
    start(first=True)
    rescan_at = loop.time() + RESCAN_S
    try:
        while not await gone():
            try:
                line: bytes | None = await asyncio.wait_for(
                    queue.get(), max(0.05, rescan_at - loop.time())
                )
            except TimeoutError:
                line = None
            if loop.time() >= rescan_at:
                start(first=False)
                rescan_at = loop.time() + RESCAN_S
            if line is not None:
                yield line
    finally:
        for task in streams.values():
            task.cancel()
        for task in streams.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
