"""A set of identical replicas of one deployment of a service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from modelport.compute.local.replica import Replica, ReplicaSpec, ReplicaState
from modelport.errors import ReplicasFailedError


class ReplicaSet:
    def __init__(self, spec: ReplicaSpec, on_change: Callable[[], None]) -> None:
        self.spec = spec
        self.on_change = on_change
        self.replicas: list[Replica] = []
        self._next_index = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self.on_change()

    def scale_to(self, count: int) -> list[Replica]:
        """Start replicas up to ``count``; returns those to stop (newest first)."""
        while len(self.replicas) < count:
            replica = Replica(self.spec, self._next_index, self._notify)
            self._next_index += 1
            self.replicas.append(replica)
            replica.start()
        surplus = self.replicas[count:]
        self.replicas = self.replicas[:count]
        return surplus[::-1]

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == ReplicaState.READY]

    def failed(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == ReplicaState.FAILED]

    async def wait_ready(self) -> None:
        """Until every replica is ready; raises if one gave up starting."""
        while True:
            failed = self.failed()
            if failed:
                raise ReplicasFailedError(failed[0].error or "a replica failed to start")
            if self.replicas and len(self.ready()) == len(self.replicas):
                return
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        replicas, self.replicas = self.replicas, []
        await asyncio.gather(*(r.stop() for r in replicas))
