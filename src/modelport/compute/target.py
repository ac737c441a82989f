"""The seam between the control plane and where replicas run.

A service controller talks to compute only through these protocols:

- :class:`ComputeTarget` prepares a generation (files, environment), launches it,
  finds what a previous control plane left running, cleans up after a service and
  reads logs.
- :class:`Generation` is one generation's replicas on that target: scale, wait until
  ready, report each replica's state (with the reason when it failed), stop.

``compute/local/`` runs replicas as processes of this machine; ``compute/kubernetes/``
as pods.  Implementations are chosen by name (:func:`load_target`) and imported
lazily, so the control plane never imports a Kubernetes client it does not use.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modelport.compute.plan import DeploymentPlan
    from modelport.spec.support import Target
    from modelport.store.services import ServiceRecord

OnChange = Callable[[], None]
Say = Callable[[str], None]


class ReplicaState(enum.StrEnum):
    STARTING = "Starting"  # started, not yet ready
    READY = "Ready"
    UNHEALTHY = "Unhealthy"  # was ready, now failing its probe
    CRASHED = "Crashed"  # exited; started again after a back-off
    UNSCHEDULABLE = "Unschedulable"  # no node has room for it (the reason is its error)
    FAILED = "Failed"  # gave up: never ready after its restarts, or cannot be placed
    STOPPING = "Stopping"
    STOPPED = "Stopped"


@dataclass(frozen=True)
class ReplicaStatus:
    """What the control plane knows of one replica, whatever runs it."""

    index: int
    state: ReplicaState
    host: str
    port: int
    restarts: int = 0
    probes_passed: int = 0
    error: str | None = None
    started_at: float | None = None
    pid: int | None = None
    limits: str | None = None
    exit_file: str | None = None  # where the router reads why a replica died
    stats_port: int | None = None  # its counters at ``GET /stats`` (runtime/counters.py)
    unix_socket: str | None = None  # same-machine routers connect here rather than by TCP

    @property
    def ready(self) -> bool:
        return self.state == ReplicaState.READY


class Generation(Protocol):
    """One generation (deployment) of a service's replicas on a compute target."""

    generation: int

    def replicas(self) -> Sequence[ReplicaStatus]: ...

    def scale_to(self, count: int) -> Callable[[], Awaitable[None]]:
        """Start replicas up to ``count`` at once; replicas beyond it get no new work
        once the routers know, so the returned step (run after publishing) ends them."""
        ...

    async def wait_ready(self) -> None:
        """Until every replica is ready; raises a ModelportError naming why one failed."""
        ...

    async def stop(self, drain_s: float | None = None) -> None:
        """End every replica (after ``drain_s`` for requests in flight) and its files."""
        ...

    async def let_go(self) -> None:
        """Stop following these replicas and leave them running (a target whose
        replicas outlive the control plane, when it stops)."""
        ...


@dataclass
class Found:
    """A generation a previous control plane left running, with the spec that made it;
    ``serving``: the routers send it traffic (None where the target cannot tell)."""

    generation: Generation
    spec: dict[str, Any]
    serving: bool | None = None


class ComputeTarget(Protocol):
    name: str
    kind: str  # "local" | "kubernetes"
    keeps_running: bool  # its replicas run on when the control plane stops (a cluster's)
    capabilities: Target  # what it enforces, for warnings

    def probe_capabilities(self) -> None:
        """Blocking: learn what this target enforces (sets :attr:`capabilities`)."""
        ...

    def prepare(
        self,
        record: ServiceRecord,
        plan: DeploymentPlan,
        current: Generation | None,
        say: Say,
    ) -> Any:
        """Blocking work before replicas start (runs in a worker thread)."""
        ...

    def discard(self, service: str, generation: int) -> None:
        """Blocking: remove what :meth:`prepare` made for an abandoned generation."""
        ...

    def launch(self, prepared: Any, on_change: OnChange, owner: dict[str, Any]) -> Generation: ...

    async def adopt(self, service: str, on_change: OnChange) -> list[Found]:
        """Generations of ``service`` still running, oldest first (level-triggered)."""
        ...

    async def clean_up(self, service: str) -> None:
        """After a delete: stop whatever of ``service`` still runs and remove its files."""
        ...

    async def logs(self, service: str, current: Generation | None, num_lines: int) -> str: ...

    def check_deploy(self, plan: DeploymentPlan, current: Generation | None) -> None:
        """Refuse at once what this target cannot do (raises a ModelportError)."""
        ...

    def replica_key(self, service: str, plan: DeploymentPlan) -> str | None:
        """What the routers send every replica of ``service``, which refuses requests
        without it (local replicas); None where the network fences the replicas (a
        NetworkPolicy on a cluster).  The same for all its generations: a request queued
        for one may be served by the next."""
        ...

    async def close(self) -> None:
        """The control plane stops or the target is detached (what runs, runs on)."""
        ...


@runtime_checkable
class ClusterTarget(Protocol):
    """A target whose routers run beside its replicas (a cluster's router pods)."""

    name: str

    def start(self) -> None:
        """Begin following the cluster (the router's address); the plane's loop runs."""
        ...

    async def install(self, tls: str | None = None) -> list[str]:
        """Set up the cluster side (router, roles); safe to run again. Returns what it applied.
        ``tls``: a TLS Secret's name, ``"off"``, or None to keep what is installed."""
        ...

    async def manifests(self, tls: str | None = None) -> list[dict[str, Any]]:
        """What :meth:`install` applies, as objects."""
        ...

    def router_uri(self) -> str: ...

    async def forget_others(self, services: set[str]) -> list[str]:
        """Remove what belongs to services not in ``services``; returns their names."""
        ...

    async def publish(
        self, routes: dict[str, dict[str, Any]], tokens: dict[str, Any] | None = None
    ) -> None:
        """The services' route policies (and the token keys), once every router has
        taken them."""
        ...

    async def stats(self) -> dict[str, Any] | None:
        """Every router's per-service counters added up (None while one cannot answer)."""
        ...

    def scoring_uri(self, service: str) -> str: ...

    async def replica_stats(self, service: str, current: Generation | None) -> list[dict[str, Any]]:
        """The counters of the replicas of ``current`` that answer (their pods' own)."""
        ...

    def pod_logs(
        self,
        service: str,
        current: Generation | None,
        tail: int,
        since_s: int | None,
        follow: bool,
        gone: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[bytes]:
        """The replicas' log lines, each after its pod's name: the last ``tail`` of each
        (within ``since_s``), and with ``follow`` on as they are written, until ``gone``."""
        ...


def load_target(kind: str, **settings: Any) -> ComputeTarget:
    """The implementation named ``kind``, imported only when asked for."""
    if kind == "local":
        from modelport.compute.local.target import LocalTarget

        return LocalTarget(**settings)
    if kind == "kubernetes":
        from modelport.compute.kubernetes.target import KubernetesTarget

        return KubernetesTarget.open(**settings)
    raise ValueError(f"unknown compute target kind {kind!r}")
