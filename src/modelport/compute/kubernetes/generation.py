"""One generation's pods on a cluster, followed through a watch on their labels.

Level-triggered: the pods are listed, then watched from that list's version; when the
watch ends or breaks (410 Gone, a dropped stream) they are listed again, so a pod that
went while nobody watched is gone from the view too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from modelport.compute.kubernetes import names, pods
from modelport.compute.kubernetes.release import Release
from modelport.compute.target import OnChange, ReplicaState, ReplicaStatus
from modelport.errors import ModelportError, ReplicasFailedError

if TYPE_CHECKING:
    from modelport.compute.kubernetes.target import KubernetesTarget

log = logging.getLogger("modelport.compute")
RETRY_S = 1.0


class KubeGeneration:
    """One generation's pods, followed through a watch on their labels."""

    def __init__(
        self,
        target: KubernetesTarget,
        release: Release,
        on_change: OnChange,
        desired: int | None = None,
    ) -> None:
        self.target = target
        self.release = release
        self.generation = release.generation
        self.on_change = on_change
        self.desired = desired if desired is not None else release.plan.replicas
        self.name = names.generation_name(release.service, release.generation)
        self._pods: dict[str, dict[str, Any]] = {}
        self._ever_ready: set[str] = set()
        self._changed = asyncio.Event()
        self._listed = asyncio.Event()  # the pods have been listed once
        self._error: str | None = None  # creating the objects failed
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._created = False  # its Deployment exists (made here, or found)
        self.created_with: int | None = None  # the count its Deployment was made with

    def __repr__(self) -> str:
        return f"<KubeGeneration {self.name} desired={self.desired} pods={len(self._pods)}>"

    # -- following the pods --------------------------------------------------------
    def follow(self, create: Callable[[], Awaitable[None]] | None = None) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(create))

    async def _follow(self, create: Callable[[], Awaitable[None]] | None) -> None:
        if create is not None:
            try:
                await create()  # with the count desired by then
            except ModelportError as exc:
                self._error = exc.message
                self._notify()
                return
            if self.created_with is not None and self.created_with != self.desired:
                self.target.in_background(self.target.api.scale(self.name, self.desired))
        self._created = True
        selector = names.generation_selector(self.release.service, self.generation)
        api = self.target.api
        while not self._stopped:
            began = time.monotonic()
            try:  # level-triggered: list, then watch from there; again when it ends
                items, version = await api.list_at("Pod", selector)
                self._pods = {}
                for pod in items:
                    self._seen("ADDED", pod)
                self._listed.set()
                self._notify()
                async for kind, pod in api.watch("Pod", selector, version):
                    self._seen(kind, pod)
            except ModelportError as exc:
                log.info("%s: watching pods: %s; listing again", self.name, exc.message)
            if time.monotonic() - began < RETRY_S:  # a watch that ends at once: no spinning
                await asyncio.sleep(RETRY_S)

    async def known(self, timeout_s: float = 10.0) -> None:
        """Until the pods have been listed once (an adopted generation starts unknown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listed.wait(), timeout_s)

    def _seen(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            self._pods.pop(name, None)
        else:
            self._pods[name] = pod
            if pods.replica_status(pod, 0).ready:
                self._ever_ready.add(name)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self.on_change()

    # -- Generation ------------------------------------------------------------------
    def replicas(self) -> Sequence[ReplicaStatus]:
        ordered = pods.ordered(
            [p for p in self._pods.values() if not p["metadata"].get("deletionTimestamp")]
        )
        statuses = [
            pods.replica_status(p, i, p["metadata"]["name"] in self._ever_ready)
            for i, p in enumerate(ordered)
        ]
        missing = max(0, self.desired - len(statuses))
        error = self._error
        state = ReplicaState.FAILED if error else ReplicaState.STARTING
        start = len(statuses)
        statuses += [ReplicaStatus(start + i, state, "", 0, error=error) for i in range(missing)]
        return statuses[: max(self.desired, 0)] if not self._error else statuses

    def scale_to(self, count: int) -> Callable[[], Awaitable[None]]:
        changed = count != self.desired
        self.desired = count
        if changed and self._created:
            self.target.in_background(self.target.api.scale(self.name, count))

        async def finish() -> None:
            # The cluster ends the surplus pods: terminating, they leave the
            # EndpointSlices (and so the routers) first, then drain on SIGTERM.
            return None

        return finish

    async def wait_ready(self) -> None:
        while True:
            statuses = self.replicas()
            failed = [r for r in statuses if r.state == ReplicaState.FAILED]
            if failed:
                raise ReplicasFailedError(failed[0].error or "a replica failed to start")
            if statuses and all(r.ready for r in statuses) and len(statuses) >= self.desired:
                return
            self._changed.clear()
            # Unschedulable pods fail after a time: look again even without news.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 5.0)

    async def let_go(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self, drain_s: float | None = None) -> None:
        await self.let_go()
        await self.target.delete_generation(self.release.service, self.generation)

    def pod_addresses(self) -> list[tuple[str, str]]:
        """(name, address) of the pods that have an address."""
        found = []
        for p in pods.ordered(list(self._pods.values())):
            address = (p.get("status") or {}).get("podIP")
            if address:
                found.append((p["metadata"]["name"], address))
        return found

    def pod_names(self) -> list[str]:
        return [p["metadata"]["name"] for p in pods.ordered(list(self._pods.values()))]
