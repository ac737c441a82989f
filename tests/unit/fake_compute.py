"""A compute target that runs nothing, for unit tests of the controller only.

Replicas change state when a test says so (``become``); every call the controller
makes is recorded.  Using it against anything real fails loudly: it has no
processes, no pods and no files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelport.compute.plan import DeploymentPlan
from modelport.compute.target import Found, Generation, OnChange, ReplicaState, ReplicaStatus, Say
from modelport.errors import ReplicasFailedError
from modelport.spec.support import Target
from modelport.store.services import ServiceRecord


@dataclass
class FakeGeneration:
    generation: int
    on_change: OnChange
    statuses: list[ReplicaStatus] = field(default_factory=list)
    stopped: bool = False
    next_index: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def replicas(self) -> Sequence[ReplicaStatus]:
        return list(self.statuses)

    def scale_to(self, count: int) -> Callable[[], Awaitable[None]]:
        while len(self.statuses) < count:
            port = 10000 + 100 * self.generation + self.next_index
            self.statuses.append(ReplicaStatus(self.next_index, ReplicaState.STARTING, "h", port))
            self.next_index += 1
        surplus, self.statuses = self.statuses[count:], self.statuses[:count]

        async def finish() -> None:
            self.retired.extend(surplus)

        return finish

    retired: list[ReplicaStatus] = field(default_factory=list)

    def become(self, state: ReplicaState, error: str | None = None) -> None:
        self.statuses = [replace(r, state=state, error=error) for r in self.statuses]
        self.changed.set()
        self.on_change()

    async def wait_ready(self) -> None:
        while True:
            failed = [r for r in self.statuses if r.state == ReplicaState.FAILED]
            if failed:
                raise ReplicasFailedError(failed[0].error or "failed")
            if self.statuses and all(r.ready for r in self.statuses):
                return
            self.changed.clear()
            await self.changed.wait()

    async def stop(self, drain_s: float | None = None) -> None:
        self.stopped = True
        self.statuses = []

    async def let_go(self) -> None:
        self.let_go_called = True

    let_go_called: bool = False


class FakeTarget:
    name = "fake"
    kind = "fake"
    keeps_running = False

    def __init__(self) -> None:
        self.capabilities = Target("fake")
        self.launched: list[FakeGeneration] = []
        self.running: dict[str, list[Found]] = {}
        self.discarded: list[tuple[str, int]] = []
        self.cleaned: list[str] = []
        self.prepare_gate: asyncio.Event | None = None

    async def close(self) -> None:
        return None

    def probe_capabilities(self) -> None:
        return None

    def check_deploy(self, plan: DeploymentPlan, current: Generation | None) -> None:
        return None

    def replica_key(self, service: str, plan: DeploymentPlan) -> str | None:
        return None

    def prepare(
        self, record: ServiceRecord, plan: DeploymentPlan, current: Generation | None, say: Say
    ) -> int:
        return record.generation

    def discard(self, service: str, generation: int) -> None:
        self.discarded.append((service, generation))

    def launch(self, prepared: Any, on_change: OnChange, owner: dict[str, Any]) -> FakeGeneration:
        made = FakeGeneration(int(prepared), on_change)
        self.launched.append(made)
        return made

    async def adopt(self, service: str, on_change: OnChange) -> list[Found]:
        return self.running.get(service, [])

    async def clean_up(self, service: str) -> None:
        self.cleaned.append(service)

    async def logs(self, service: str, current: Generation | None, num_lines: int) -> str:
        return ""
