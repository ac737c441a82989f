"""List, then watch from the list's resourceVersion; and keep doing so across failures.

A watch can end for many reasons (the API server restarted, 410 Gone, a dropped
connection): ``keep`` logs the failure and starts over with a fresh list, so handlers
are level-triggered: ``on_list`` gets the whole current set each time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube import AsyncClient

log = logging.getLogger("node-agent")
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


async def list_and_watch(
    client: AsyncClient,
    kind: Any,
    on_list: Callable[[list[Any]], Awaitable[None]],
    on_event: Callable[[str, Any], Awaitable[None]],
) -> None:
    listing = client.list(kind, namespace="*")
    items = [item async for item in listing]
    await on_list(items)
    version = listing.resourceVersion
    async for event, item in client.watch(kind, namespace="*", resource_version=version):
        await on_event(event, item)


async def keep(what: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` forever: after a failure, again, with a growing pause (reset on success)."""
    pause = RETRY_MIN_S
    while True:
        began = asyncio.get_running_loop().time()
        try:
            await run()
            log.info("%s ended; starting again", what)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed (%s: %s); starting again", what, type(exc).__name__, exc)
        if asyncio.get_running_loop().time() - began > RETRY_MAX_S:
            pause = RETRY_MIN_S
        await asyncio.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_S)
