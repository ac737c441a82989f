"""One pod, run for real from its spec, with its status reported as a kubelet reports it.

The pod's volumes are made first; then its init containers run one after the other, each
to a successful exit; then all its containers start, each in a loop: run, probe, exit,
and (as restartPolicy says) restart after a back-off of 0 s, then 10 s doubling to 300 s
(CrashLoopBackOff). Phase and conditions are derived from the containers' states the
way the kubelet derives them. Status goes to ``pods/status`` as a merge patch whenever
it changes (one write in flight per pod; the UID guards against a namesake pod).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.models.core_v1 import Container, Probe
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from tests.kube.containers import (
    ContainerRun,
    Launch,
    Mount,
    ProcessRegistry,
    launch,
    termination_message,
)
from tests.kube.env import command_line, container_env, expand, image_env, service_env
from tests.kube.probes import ProbeTarget, run_probe
from tests.kube.refs import ConfigError, PodFacts
from tests.kube.times import api_time
from tests.kube.volumes import HostVolume, prepare_volumes

log = logging.getLogger("node-agent.pods")
CONFIG_RETRY_S = 2.0
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Backoff:
    """Restart delays: none for the first restart, then base doubling up to max."""

    base_s: float = 10.0
    max_s: float = 300.0
    reset_after_s: float = 600.0  # a run this long forgets earlier crashes

    def delay(self, crashes: int) -> float:
        return 0.0 if crashes <= 1 else min(self.base_s * 2 ** (crashes - 2), self.max_s)


@dataclass
class NodeHost:
    """What the pods of this agent share: the API, the agent's folder, settings."""

    client: AsyncClient
    state: Path
    api_host: str
    api_port: int
    registry: ProcessRegistry
    backoff: Backoff


class ContainerStatus:
    """The state of one container (all its runs) as the API shows it."""

    def __init__(self, container: Container, reason: str) -> None:
        self.name = container.name
        self.image = container.image or ""
        self.state: dict[str, Any] = {"waiting": {"reason": reason}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.runs = 0  # runs started so far
        self.crashes = 0  # ends since the back-off was last reset
        self.ready = False
        self.started = False
        self.container_id: str | None = None
        self.exit_code: int | None = None  # of the latest run

    def waiting(self, reason: str, message: str = "") -> None:
        if "terminated" in self.state:
            self.last_state = self.state
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def running(self, pid: int, at: str) -> None:
        if "terminated" in self.state:
            self.last_state = self.state
        self.restart_count = self.runs
        self.runs += 1
        self.container_id = f"process://{pid}"
        self.state = {"running": {"startedAt": at}}

    def terminated(self, code: int, message: str, finished: str) -> None:
        self.exit_code = code
        self.ready = False
        self.started = False
        entry = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": self.state.get("running", {}).get("startedAt", finished),
            "finishedAt": finished,
            "containerID": self.container_id,
        }
        if message:
            entry["message"] = message
        self.state = {"terminated": entry}

    @property
    def is_running(self) -> bool:
        return "running" in self.state

    def api(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": f"process://{self.image}",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


class PodRunner:
    def __init__(self, host: NodeHost, pod: Pod, ip: str) -> None:
        assert pod.metadata is not None and pod.spec is not None
        self.host = host
        self.pod = pod
        self.spec = pod.spec
        self.name = pod.metadata.name or ""
        self.namespace = pod.metadata.namespace or "default"
        self.uid = pod.metadata.uid or ""
        self.ip = ip
        self.facts = PodFacts(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            node_name=self.spec.nodeName or "",
            service_account=self.spec.serviceAccountName or "default",
            pod_ip=ip,
            host_ip="127.0.0.1",
            labels=dict(pod.metadata.labels or {}),
            annotations=dict(pod.metadata.annotations or {}),
        )
        self.folder = host.state / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.init_statuses = [
            ContainerStatus(c, "PodInitializing") for c in self.spec.initContainers or []
        ]
        self.statuses = [
            ContainerStatus(c, "PodInitializing" if self.init_statuses else "ContainerCreating")
            for c in self.spec.containers
        ]
        self.initialized = not self.init_statuses
        self.init_failed = False
        self.start_time = api_time()
        self.stopping = asyncio.Event()
        self.runs: dict[str, ContainerRun] = {}
        self.volumes: dict[str, HostVolume] = {}
        self._transitions: dict[str, tuple[str, str]] = {}
        self._scheduled = next(
            (
                c.to_dict()
                for c in (pod.status and pod.status.conditions) or []
                if c.type == "PodScheduled"
            ),
            None,
        )
        self._dirty = False
        self._gone = False
        self._last_status: dict[str, Any] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._changed()
        self._main = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    async def stop(self, grace_s: float) -> None:
        """Stop every container (SIGTERM, then SIGKILL after ``grace_s``) and report it."""
        self.stopping.set()
        await asyncio.gather(*(run.stop(grace_s) for run in list(self.runs.values())))
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        self._changed()
        await self.flush()

    def forget(self) -> None:
        """The pod is gone from the API: drop its volumes (its logs stay)."""
        self._gone = True
        shutil.rmtree(self.folder / "volumes", ignore_errors=True)

    async def _run(self) -> None:
        try:
            if await self._prepare() and await self._initialize():
                self.initialized = True
                self._changed()
                await asyncio.gather(
                    *(
                        self._keep(c, s)
                        for c, s in zip(self.spec.containers, self.statuses, strict=True)
                    )
                )
        except Exception:
            log.exception("pod %s/%s failed in the node agent", self.namespace, self.name)

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the pod is being stopped; True if it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    async def _prepare(self) -> bool:
        while not self.stopping.is_set():
            try:
                self.volumes = await prepare_volumes(
                    self.host.client, self.facts, self.spec, self.folder / "volumes"
                )
                return True
            except ConfigError as exc:
                for status in self.init_statuses[:1] or self.statuses:
                    status.waiting("ContainerCreating", f"MountVolume.SetUp failed: {exc}")
                self._changed()
            if await self._pause(CONFIG_RETRY_S):
                break
        return False

    async def _initialize(self) -> bool:
        for container, status in zip(
            self.spec.initContainers or [], self.init_statuses, strict=True
        ):
            while True:
                code = await self._run_once(container, status, probes=False)
                if code is None:
                    return False
                if code == 0:
                    break
                if self.spec.restartPolicy == "Never":
                    self.init_failed = True
                    self._changed()
                    return False
                if await self._back_off(status):
                    return False
        return True

    async def _keep(self, container: Container, status: ContainerStatus) -> None:
        policy = self.spec.restartPolicy or "Always"
        while True:
            code = await self._run_once(container, status, probes=True)
            if code is None or policy == "Never" or (policy == "OnFailure" and code == 0):
                return
            if await self._back_off(status):
                return

    async def _back_off(self, status: ContainerStatus) -> bool:
        status.crashes += 1
        delay = self.host.backoff.delay(status.crashes)
        if delay > 0:
            status.waiting(
                "CrashLoopBackOff",
                f"back-off {delay:g}s restarting failed container={status.name} "
                f"pod={self.name}_{self.namespace}({self.uid})",
            )
            self._changed()
        return await self._pause(delay)

    # -- one run of a container ------------------------------------------------------

    async def _run_once(
        self, container: Container, status: ContainerStatus, probes: bool
    ) -> int | None:
        """Run the container once; its exit code, or None if the pod stopped first."""
        while True:
            if self.stopping.is_set():
                return None
            try:
                spec, env = await self._launch_spec(container, status)
                break
            except ConfigError as exc:
                status.waiting("CreateContainerConfigError", str(exc))
                self._changed()
            if await self._pause(CONFIG_RETRY_S):
                return None
        run = await launch(spec, self.host.registry)
        self.runs[container.name] = run
        began = time.monotonic()
        status.running(run.pid, api_time())
        self._changed()
        if self.stopping.is_set():
            await run.stop(0)
        tasks = self._probe(container, status, run, env) if probes else []
        try:
            code = await run.wait()
        finally:
            for task in tasks:
                task.cancel()
        if time.monotonic() - began > self.host.backoff.reset_after_s:
            status.crashes = 0
        message_file = self.folder / "messages" / container.name / str(status.runs - 1)
        message = termination_message(
            message_file, spec.log, container.terminationMessagePolicy, code
        )
        status.terminated(code, message, api_time())
        self._changed()
        return code

    async def _launch_spec(
        self, container: Container, status: ContainerStatus
    ) -> tuple[Launch, dict[str, str]]:
        services = service_env(self.host.api_host, self.host.api_port)
        defined = await container_env(self.host.client, self.facts, container, services)
        argv = command_line(container, defined)
        mounts = []
        for mount in container.volumeMounts or []:
            volume = self.volumes.get(mount.name)
            if volume is None:
                raise ConfigError(f"volume {mount.name} is not defined in the pod")
            sub = mount.subPath or expand(mount.subPathExpr or "", defined)
            source = volume.path / sub if sub else volume.path
            if sub and not source.exists():
                source.mkdir(parents=True)
            mounts.append(Mount(source, mount.mountPath, bool(mount.readOnly) or volume.read_only))
        attempt = str(status.runs)
        message_file = self.folder / "messages" / container.name / attempt
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        message_path = container.terminationMessagePath or "/dev/termination-log"
        mounts.append(Mount(message_file, message_path, False))
        env = {**image_env(self.name), **defined}
        working_dir = container.workingDir or "/"
        log_file = self.folder / "logs" / container.name / f"{attempt}.log"
        return Launch(argv, env, working_dir, mounts, log_file), env

    def _probe(
        self, container: Container, status: ContainerStatus, run: ContainerRun, env: dict[str, str]
    ) -> list[asyncio.Task[None]]:
        ports = {p.name: p.containerPort for p in container.ports or [] if p.name}
        target = ProbeTarget(self.ip, ports, run.pid, env, container.workingDir or "/")
        tasks: list[asyncio.Task[None]] = []
        grace = float(self.spec.terminationGracePeriodSeconds or DEFAULT_GRACE_S)

        def spawn(probe: Probe, report: Callable[[bool, str], None]) -> None:
            tasks.append(asyncio.create_task(run_probe(probe, target, report)))

        def on_ready(ok: bool, detail: str) -> None:
            status.ready = ok and status.is_running
            self._changed()

        def on_live(ok: bool, detail: str) -> None:
            if not ok:
                log.info(
                    "%s/%s %s: liveness failed: %s", self.namespace, self.name, status.name, detail
                )
                tasks.append(asyncio.create_task(self._kill(run, container, grace)))

        def after_startup() -> None:
            status.started = True
            if container.livenessProbe:
                spawn(container.livenessProbe, on_live)
            if container.readinessProbe:
                spawn(container.readinessProbe, on_ready)
            else:
                status.ready = True
            self._changed()

        def on_startup(ok: bool, detail: str) -> None:
            if ok:
                after_startup()
            else:
                tasks.append(asyncio.create_task(self._kill(run, container, grace)))

        if container.startupProbe:
            spawn(container.startupProbe, on_startup)
        else:
            after_startup()
        return tasks

    async def _kill(self, run: ContainerRun, container: Container, grace: float) -> None:
        probe_grace = (
            container.livenessProbe and container.livenessProbe.terminationGracePeriodSeconds
        )
        await run.stop(float(probe_grace or grace))

    # -- status ----------------------------------------------------------------------

    def _condition(
        self, kind: str, ok: bool, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        value = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != value:
            self._transitions[kind] = (value, api_time())
        condition = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self._transitions[kind][1],
        }
        if not ok and reason:
            condition.update(reason=reason, message=message)
        return condition

    def phase(self) -> str:
        """The kubelet's getPhase, over this pod's container states."""
        if not self.initialized:
            return "Failed" if self.init_failed else "Pending"
        waiting = running = stopped = succeeded = 0
        for s in self.statuses:
            if "running" in s.state:
                running += 1
            elif "terminated" in s.state:
                stopped += 1
                succeeded += s.exit_code == 0
            elif "terminated" in s.last_state:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        policy = self.spec.restartPolicy or "Always"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"

    def status(self) -> dict[str, Any]:
        phase = self.phase()
        unready = [s.name for s in self.statuses if not s.ready]
        incomplete = [s.name for s in self.init_statuses if s.exit_code != 0]
        done = phase in ("Succeeded", "Failed")
        ready_reason = "PodCompleted" if done else "ContainersNotReady"
        ready_message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition(
                "Initialized",
                self.initialized,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            ),
            self._condition("Ready", not unready and not done, ready_reason, ready_message),
            self._condition(
                "ContainersReady", not unready and not done, ready_reason, ready_message
            ),
            self._scheduled or self._condition("PodScheduled", True),
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "containerStatuses": [s.api() for s in self.statuses],
        }
        if self.init_statuses:
            status["initContainerStatuses"] = [s.api() for s in self.init_statuses]
        return status

    def _changed(self) -> None:
        self._dirty = True
        if not self._gone and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write())

    async def flush(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), 10)

    async def _write(self) -> None:
        while self._dirty and not self._gone:
            self._dirty = False
            status = self.status()
            if status == self._last_status:
                continue
            try:
                await self.host.client.patch(
                    Pod.Status,
                    self.name,
                    {"metadata": {"uid": self.uid}, "status": status},
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
                self._last_status = status
            except ApiError as exc:
                if exc.status.code in (404, 409, 422):
                    self._gone = True  # deleted, or replaced by a namesake
                    return
                log.warning("status of %s/%s: %s", self.namespace, self.name, exc)
                self._dirty = True
                await asyncio.sleep(1.0)
            except httpx2.HTTPError as exc:
                log.warning("status of %s/%s: %s", self.namespace, self.name, exc)
                self._dirty = True
                await asyncio.sleep(1.0)

    # -- logs ------------------------------------------------------------------------

    def _status_of(self, container: str) -> ContainerStatus | None:
        return next((s for s in self.init_statuses + self.statuses if s.name == container), None)

    def has_container(self, container: str) -> bool:
        return self._status_of(container) is not None

    def log_file(self, container: str, previous: bool) -> Path | None:
        """The log of the container's latest run (or the one before it)."""
        status = self._status_of(container)
        run = (status.runs if status else 0) - 1 - (1 if previous else 0)
        return self.folder / "logs" / container / f"{run}.log" if run >= 0 else None

    def running(self, container: str) -> bool:
        status = self._status_of(container)
        return status is not None and status.is_running and not self.stopping.is_set()
