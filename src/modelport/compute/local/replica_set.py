"""A set of identical replicas of one deployment (a generation) of a service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from modelport.compute.local.records import ReplicaSpec, load_records, save_deployment
from modelport.compute.local.replica import Replica
from modelport.compute.target import ReplicaState
from modelport.errors import ReplicasFailedError

log = logging.getLogger("modelport.compute")


class ReplicaSet:
    def __init__(self, spec: ReplicaSpec, on_change: Callable[[], None]) -> None:
        self.spec = spec
        self.on_change = on_change
        self.replicas: list[Replica] = []
        self._next_index = 0
        # GPUs for a new replica (None: too few free); set by the target when gpus > 0.
        self.pick_devices: Callable[[tuple[str, ...]], tuple[str, ...] | None] | None = None
        self._changed = asyncio.Event()

    @classmethod
    def create(
        cls, spec: ReplicaSpec, on_change: Callable[[], None], owner: dict[str, Any] | None = None
    ) -> ReplicaSet:
        """A new deployment: its spec is written down so a later control plane can adopt it."""
        save_deployment(spec, owner)
        return cls(spec, on_change)

    @classmethod
    def adopt(cls, spec: ReplicaSpec, on_change: Callable[[], None]) -> ReplicaSet:
        """The replicas of this deployment whose supervisors still run, followed again."""
        replicas = cls(spec, on_change)
        records = load_records(spec)
        for record in records:
            replica = Replica.adopt(spec, record, replicas._notify)
            if replica is not None:
                replicas.replicas.append(replica)
                replica.start()
        replicas._next_index = max((r.index for r in records), default=-1) + 1
        return replicas

    async def known(self, timeout_s: float = 5.0) -> None:
        """Until every replica's supervisor has said how it is (adopted ones start unknown)."""
        waits = [r.known.wait() for r in self.replicas]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), timeout_s)

    def _notify(self) -> None:
        self._changed.set()
        self.on_change()

    def scale_to(self, count: int) -> list[Replica]:
        """Start replicas up to ``count``; returns those to stop (newest first)."""
        while len(self.replicas) < count:
            devices: tuple[str, ...] = ()
            if self.spec.gpus and self.pick_devices is not None:
                mine = tuple(d for r in self.replicas for d in r.devices)
                found = self.pick_devices(mine)
                if found is None:
                    log.warning(
                        "%s: no free GPUs for more than %d replicas",
                        self.spec.service,
                        len(self.replicas),
                    )
                    break
                devices = found
            replica = Replica(self.spec, self._next_index, self._notify, devices=devices)
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

    async def stop(self, drain_s: float | None = None) -> None:
        replicas, self.replicas = self.replicas, []
        await asyncio.gather(*(r.stop(drain_s) for r in replicas))
