"""The control plane's running part: service controllers, the router, the builder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from modelport.compute.target import ClusterTarget, ComputeTarget, load_target
from modelport.control import modeldata
from modelport.control.controller import ServiceController
from modelport.control.endpoints import Endpoints
from modelport.control.metrics_port import MetricsServer
from modelport.control.router_process import RouterProcess
from modelport.control.targets import cluster_target
from modelport.control.tls import TlsSettings
from modelport.control.tokens import Tokens
from modelport.control.workspace import ServerWorkspace
from modelport.envs.builder import EnvironmentBuilder
from modelport.errors import (
    ComputeTargetNotFoundError,
    InvalidInputError,
    ModelportError,
    ServerUnavailableError,
)
from modelport.home import runtime_dir
from modelport.httpserver import Limits
from modelport.metrics import ControlCounters
from modelport.spec.compute import LOCAL
from modelport.spec.retention import retention_days
from modelport.spec.tokens import lifetime_s
from modelport.store.computes import ComputeTargetRecord
from modelport.store.endpoints import EndpointRecord

Gone = Callable[[], Awaitable[bool]]  # whether a followed stream's client has left
log = logging.getLogger("modelport.control")


class ControlPlane:
    def __init__(
        self,
        workspace: ServerWorkspace,
        router_host: str,
        router_port: int,
        router_workers: int = 1,
        api_url: str = "",
        tls: TlsSettings | None = None,
        router_limits: Limits | None = None,
        metrics_socket: socket.socket | None = None,
    ) -> None:
        """``metrics_socket``: bound for the metrics port (``control/metrics_port.py``)."""
        self.workspace = workspace
        self.services = workspace.services
        self.builder = EnvironmentBuilder(workspace.home / "envs")
        self.router_host = router_host
        self.router_port = router_port
        self.router_workers = router_workers
        self.api_url = api_url  # the management API as a cluster's pods reach it
        self.tls = tls  # the router's scoring port serves HTTPS
        self.router_limits = router_limits
        self.router: RouterProcess | None = None
        self.default_target: ComputeTarget = load_target(
            "local",
            home=workspace.home,
            builder=self.builder,
            models=workspace.models,
            snapshots=workspace.snapshots,
            blobs=workspace.blobs,
        )
        self.targets: dict[str, ComputeTarget] = {}  # attached clusters, by name
        self._background: set[asyncio.Task[None]] = set()
        self.controllers: dict[str, ServiceController] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self._publish_again = False
        self._stats: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.endpoints = Endpoints(self)
        self.tokens = Tokens(workspace.tokens, lifetime_s())
        self._prune_timer: asyncio.TimerHandle | None = None
        self.model_data_days = retention_days()  # None: kept for ever
        self.counters = ControlCounters()
        self.metrics = MetricsServer(self, metrics_socket) if metrics_socket else None

    async def start(self) -> None:
        """Adopt (or start) the router, adopt each service's running replicas, then reconcile.

        The first table the router gets names every service, with the replicas that
        still run, so a service that exists is never a 404 during a restart.
        """
        self.loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.default_target.probe_capabilities)
        self.router = RouterProcess(
            self.workspace.home,
            self.router_host,
            self.router_port,
            self.workspace.admin_token,
            workers=self.router_workers,
            tls=self.tls,
            limits=self.router_limits,
        )
        await self.router.start()
        if self.metrics is not None:
            await self.metrics.start()
        await asyncio.to_thread(self.tokens.prune)
        await asyncio.to_thread(self.tokens.keys)  # the first key, before any table
        self._schedule_prune()
        if self.model_data_days is not None:
            self._in_background(self._age_model_data(self.model_data_days), "ageing model data")
        for attached in await asyncio.to_thread(self.workspace.computes.list):
            await self.open_cluster(attached)
        await self.endpoints.start()
        records = await asyncio.to_thread(self.services.list)
        for record in records:
            controller = self.controllers[record.name] = ServiceController(record.name, self)
            try:
                await controller.adopt(record)
            except ModelportError as exc:  # e.g. a cluster that does not answer now
                log.warning("service %s: cannot adopt its replicas: %s", record.name, exc.message)
        await self.publish()
        for controller in list(self.controllers.values()):
            controller.start()
        self.endpoints.after_start()
        known = {r.name for r in records}
        for target in self.targets.values():
            if isinstance(target, ClusterTarget):
                self._in_background(target.forget_others(known), f"cleaning {target.name}")

    @property
    def router_url(self) -> str:
        assert self.router is not None
        return self.router.url

    def notify(self, name: str) -> None:
        """Something changed for ``name`` in the store (callable from any thread)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._kick, name)

    def _kick(self, name: str) -> None:
        controller = self.controllers.get(name)
        if controller is None:
            controller = self.controllers[name] = ServiceController(name, self)
            controller.start()
        controller.wake.set()

    def notify_endpoint(self, name: str) -> None:
        """Endpoint ``name`` changed in the store (callable from any thread)."""
        self.endpoints.notify(name)

    def serving_versions(self, record: EndpointRecord) -> set[str]:
        return self.endpoints.serving(record)

    def promotion_view(self, name: str) -> dict[str, Any] | None:
        return self.endpoints.promotion_view(name)

    async def promote(self, name: str, settings: dict[str, Any]) -> None:
        await self.endpoints.promote(name, settings)

    async def cancel_promotion(self, name: str) -> None:
        await self.endpoints.cancel(name)

    async def endpoint_stats(self, record: EndpointRecord, window: float) -> dict[str, Any]:
        return await self.endpoints.stats(record, window)

    async def until_idle(self, name: str, timeout_s: float) -> None:
        """Wait (to ``timeout_s``) until the router has no request of ``name`` in flight
        or queued: a version leaving its endpoint is drained before it goes."""
        assert self.loop is not None
        deadline = self.loop.time() + timeout_s
        while self.loop.time() < deadline:
            stats = await self.service_stats(name)
            if stats is None or stats["inFlight"] + stats["queued"] == 0:
                return
            await asyncio.sleep(0.05)
        log.warning("service %s: requests still in flight after %.0f s", name, timeout_s)

    def forget(self, name: str) -> None:
        self.controllers.pop(name, None)

    def serves_tls(self, target: ComputeTarget) -> bool:
        """Whether scoring on ``target`` is https (this machine's router with TLS)."""
        return self.tls is not None and target is self.default_target

    def scoring_uri(self, name: str) -> str:
        controller = self.controllers.get(name)
        target = controller.target if controller is not None else None
        if isinstance(target, ClusterTarget):
            return target.scoring_uri(name)
        return f"{self.router_url}/api/v1/service/{name}/score"

    async def publish(self) -> None:
        """Give each router the current table and wait until it has taken it: this
        machine's router gets the local services, a cluster's routers their own."""
        if self.router is None:
            return
        local: dict[str, Any] = {}
        routed: dict[str, dict[str, Any]] = {name: {} for name in self.targets}
        for name, controller in self.controllers.items():
            route = controller.route()
            if route is None:
                continue
            if controller.target is self.default_target:
                local[name] = route
            else:
                routed.setdefault(controller.target.name, {})[name] = route
        endpoints = self.endpoints.table(local)
        tokens = await asyncio.to_thread(self.tokens.table)
        await self.router.publish(local, endpoints, tokens)
        for target_name, routes in routed.items():
            target = self.targets.get(target_name)
            if isinstance(target, ClusterTarget):
                await target.publish(routes, tokens)

    async def rotate_signing_key(self) -> list[dict[str, Any]]:
        """A new key signs from now; routers get it at once, the old one verifies on
        until its last token expires (then :meth:`_prune` drops it)."""
        await asyncio.to_thread(self.tokens.rotate)
        await self.publish()
        self._schedule_prune()
        return await asyncio.to_thread(self.tokens.key_views)

    def _schedule_prune(self) -> None:
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None
        when = self.tokens.next_prune()
        if when is None or self.loop is None:
            return
        delay = max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.05
        self._prune_timer = self.loop.call_later(delay, self._prune_due)

    def _prune_due(self) -> None:
        async def prune() -> None:
            await asyncio.to_thread(self.tokens.prune)
            await self.publish()
            self._schedule_prune()

        self._in_background(prune(), "retiring a spent signing key")

    async def _age_model_data(self, days: int) -> None:
        """Collected model data older than ``days`` goes, checked hourly."""
        while True:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            try:
                removed = await asyncio.to_thread(
                    modeldata.remove_older, self.workspace.home, cutoff
                )
            except OSError as exc:
                log.warning("model data retention: %s", exc)
            else:
                if removed:
                    log.info("model data: %d partition(s) past %d days removed", removed, days)
            await asyncio.sleep(modeldata.SWEEP_EVERY_S)

    def schedule_publish(self) -> None:
        """publish() soon, from a synchronous callback; bursts are coalesced."""
        if self._publish_task is not None and not self._publish_task.done():
            self._publish_again = True
            return
        self._publish_task = asyncio.get_running_loop().create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        while True:
            self._publish_again = False
            await self.publish()
            if not self._publish_again:
                return

    async def service_stats(self, name: str) -> dict[str, Any] | None:
        """One service's router counters; one read serves every autoscaler for 50 ms."""
        assert self.loop is not None and self.router is not None
        controller = self.controllers.get(name)
        target = controller.target if controller is not None else self.default_target
        when, stats = self._stats.get(target.name, (0.0, None))
        if self.loop.time() - when > 0.05:
            if isinstance(target, ClusterTarget):
                stats = await target.stats()
            else:
                stats = await self.router.stats()
            self._stats[target.name] = (self.loop.time(), stats)
        if stats is None or name not in stats["services"]:
            return None
        bounds = stats.get("latencyBounds", [])
        return {**stats["services"][name], "time": stats["time"], "latencyBounds": bounds}

    def _in_background(self, work: Any, what: str) -> None:
        async def run() -> None:
            try:
                await work
            except ModelportError as exc:
                log.warning("%s: %s", what, exc.message)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def open_cluster(self, attached: ComputeTargetRecord) -> None:
        """An attached cluster becomes a compute target (its API is asked lazily)."""
        ca = self.tls.ca_bundle if self.tls is not None and self.tls.api else None
        api_ca = await asyncio.to_thread(ca.read_text) if ca is not None else None
        target = await asyncio.to_thread(
            cluster_target, attached, self.workspace, self.api_url, api_ca
        )
        self.targets[attached.name] = target
        if isinstance(target, ClusterTarget):
            target.start()

    async def close_cluster(self, name: str) -> None:
        target = self.targets.pop(name, None)
        if target is not None:
            await target.close()

    def target_for(self, spec: dict[str, Any]) -> ComputeTarget:
        """The compute target a service's spec names (none: this machine)."""
        name = spec.get("computeTarget")
        if not name or name == LOCAL:
            return self.default_target
        target = self.targets.get(name)
        if target is None:
            raise ComputeTargetNotFoundError(f"compute target {name!r} is not attached")
        return target

    async def logs(self, name: str, num_lines: int) -> str:
        controller = self.controllers.get(name)
        current = controller.current if controller is not None else None
        target = controller.target if controller is not None else self.default_target
        return await target.logs(name, current.replicas if current else None, num_lines)

    def pod_logs(
        self, name: str, tail: int, since_s: int | None, follow: bool, gone: Gone
    ) -> AsyncIterator[bytes]:
        """The log lines of a service's pods on a cluster (``ClusterTarget.pod_logs``)."""
        controller = self.controllers.get(name)
        if controller is None or not isinstance(controller.target, ClusterTarget):
            raise InvalidInputError(f"service {name} runs on no cluster")
        current = controller.current.replicas if controller.current else None
        return controller.target.pod_logs(name, current, tail, since_s, follow, gone)

    async def stop(self) -> None:
        if self._prune_timer is not None:
            self._prune_timer.cancel()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.endpoints.stop()
        for task in list(self._background):
            task.cancel()
        for controller in list(self.controllers.values()):
            await controller.shutdown()
        if self._publish_task is not None:
            self._publish_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publish_task
        if self.router is not None:
            await self.router.stop()
        for name in list(self.targets):
            await self.close_cluster(name)
        with contextlib.suppress(OSError):  # the sockets' folder, once its last one is gone
            runtime_dir(self.workspace.home).rmdir()


def plane_of(request: Request) -> ControlPlane:
    plane: ControlPlane | None = request.app.state.plane
    if plane is None:
        raise ServerUnavailableError("this server does not run services")
    return plane
