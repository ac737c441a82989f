"""The local compute target: replicas as supervised processes of this machine.

Each generation's files live in ``services/<name>/<generation>/`` (the app root
and the records a restarted control plane adopts from); logs in
``services/<name>/logs/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from modelport.compute import layout, plan
from modelport.compute.local import gpus, limits, sandbox
from modelport.compute.local.logs import tail
from modelport.compute.local.records import ReplicaSpec, deployment_owner, load_deployment
from modelport.compute.local.replica import check_port_free
from modelport.compute.local.replica_set import ReplicaSet
from modelport.compute.target import Found, Generation, OnChange, ReplicaStatus, Say
from modelport.envs.builder import EnvironmentBuilder
from modelport.errors import UnschedulableError
from modelport.home import make_private_dir, runtime_dir, workspace_key
from modelport.spec.names import parse_model_id
from modelport.spec.support import Target
from modelport.store.blobs import BlobStore
from modelport.store.models import ModelRegistry
from modelport.store.secrets import SecretBox
from modelport.store.services import ServiceRecord
from modelport.store.snapshots import SnapshotStore
from modelport.tracing import why_not_exported

ADOPT_DRAIN_S = 10.0  # replicas of generations no longer wanted, found at start
# The runtime takes its replica key from here (modelport.runtime.gate.KEY_VARIABLE).
REPLICA_KEY_VARIABLE = "MODELPORT_REPLICA_KEY"


class LocalGeneration:
    """One generation's replica processes (a :class:`ReplicaSet`) and its folder."""

    def __init__(self, generation: int, replicas: ReplicaSet) -> None:
        self.generation = generation
        self.set = replicas
        self.stopped = False

    def __repr__(self) -> str:
        return f"<LocalGeneration {self.set.spec.service}/{self.generation} {self.set.replicas}>"

    def replicas(self) -> Sequence[ReplicaStatus]:
        return [r.status() for r in self.set.replicas]

    def scale_to(self, count: int) -> Callable[[], Awaitable[None]]:
        surplus = self.set.scale_to(count)

        async def finish() -> None:
            await asyncio.gather(*(r.stop() for r in surplus))

        return finish

    async def wait_ready(self) -> None:
        await self.set.wait_ready()

    async def let_go(self) -> None:
        await self.stop()

    async def stop(self, drain_s: float | None = None) -> None:
        self.stopped = True
        await self.set.stop(drain_s)
        await asyncio.to_thread(shutil.rmtree, self.set.spec.folder, True)

    def log_paths(self) -> list[Path]:
        return [r.log_path for r in self.set.replicas]


class LocalTarget:
    name = "local"
    kind = "local"
    keeps_running = False  # `modelport down` ends them; they start again with `up`

    def __init__(
        self,
        home: Path,
        builder: EnvironmentBuilder,
        models: ModelRegistry,
        snapshots: SnapshotStore,
        blobs: BlobStore,
    ) -> None:
        self.home = home
        self.builder = builder
        self.models = models
        self.snapshots = snapshots
        self.blobs = blobs
        self.capabilities = Target("local", gpus=True, traces=why_not_exported())
        self.gpus: tuple[str, ...] = ()  # this machine's, for replicas
        self._live: dict[str, list[LocalGeneration]] = {}  # by service: who holds GPUs
        self._box: SecretBox | None = None  # the workspace's, read on first use

    async def close(self) -> None:
        return None

    def probe_capabilities(self) -> None:
        """Blocking: try a cgroup once to know whether CPU and memory are enforced; list
        the GPUs replicas may have."""
        cgroups = limits.check(f"{workspace_key(self.home)}/probe")
        self.capabilities = Target("local", cgroups, gpus=True, traces=why_not_exported())
        self.gpus = gpus.inventory()

    def _taken(self, service: str) -> set[str]:
        """GPUs that replicas of other services hold."""
        return {
            d
            for name, generations in self._live.items()
            if name != service
            for g in generations
            if not g.stopped
            for r in g.set.replicas
            for d in r.devices
        }

    def _follow(self, service: str, made: LocalGeneration) -> LocalGeneration:
        live = [g for g in self._live.get(service, []) if not g.stopped]
        self._live[service] = [*live, made]
        if made.set.spec.gpus:
            need = made.set.spec.gpus
            made.set.pick_devices = lambda mine: gpus.pick(
                self.gpus, self._taken(service) | set(mine), need
            )
        return made

    def replica_key(self, service: str, the_plan: plan.DeploymentPlan) -> str | None:
        """Only the router, which the route table gives it to, reaches a replica; but a
        LocalWebservice is called on its replica's own port, without a key, as in v1.

        Derived from the workspace's sealing key: the same for every generation and
        after a restart, never stored, and a new one in another workspace.
        """
        if the_plan.compute_type == "Local":
            return None
        if self._box is None:
            self._box = SecretBox.for_workspace(self.home)
        return derive_replica_key(self._box, service)

    # -- a new generation ------------------------------------------------------------
    def check_deploy(self, the_plan: plan.DeploymentPlan, current: Generation | None) -> None:
        """A fixed port that another program holds is refused before anything is stored."""
        port = the_plan.fixed_port
        if port is not None and not any(r.port == port for r in _replicas(current)):
            check_port_free(port)

    def prepare(
        self,
        record: ServiceRecord,
        the_plan: plan.DeploymentPlan,
        current: Generation | None,
        say: Say,
    ) -> ReplicaSpec:
        """Environment, source and model files of a generation (blocking)."""
        if the_plan.gpu_cores:
            short = gpus.shortage(
                self.gpus, self._taken(record.name), the_plan.gpu_cores, the_plan.replicas
            )
            if short is not None:
                raise UnschedulableError(short)
        built = self.builder.ensure(plan.environment(record.spec), say)
        models = [self.models.get(*parse_model_id(m)) for m in record.spec["models"]]
        basename, files = self.snapshots.get(record.spec["snapshot"])
        say(f"laying out source and {len(models)} model(s)")
        root = layout.lay_out(
            self.home, record.name, record.generation, self.blobs, basename, files, models
        )
        inference = plan.inference_config(record.spec)
        entry = f"{basename}/{inference.entry_script}" if basename else inference.entry_script
        runtime = layout.runtime_copy(self.home)
        env = _base_environment()
        env.update(built.variables)
        env.update(plan.replica_environment(the_plan, record.name))
        env.update(
            {
                "AML_APP_ROOT": str(root),
                "AZUREML_ENTRY_SCRIPT": entry,
                "AZUREML_SOURCE_DIRECTORY": basename,
                "AZUREML_MODEL_DIR": layout.model_dir(root, models),
                "MODELPORT_MODEL_DIR": layout.model_dir(root, models),
                "PYTHONPATH": str(runtime),
                "PYTHONUNBUFFERED": "1",
            }
        )
        confinement = sandbox.confinement_for(self.home, root, built.python, runtime)
        if the_plan.collect_model_data:  # ModelDataCollector's rows: the service's own folder
            data = layout.model_data_dir(self.home, record.name)
            env[plan.MODEL_DATA_DIR] = str(data)
            confinement = confinement.with_writable(os.path.realpath(data))
        replica_key = self.replica_key(record.name, the_plan)
        if replica_key is not None:
            env[REPLICA_KEY_VARIABLE] = replica_key
        return ReplicaSpec(
            service=record.name,
            deployment=record.generation,
            python=built.python,
            app_root=root,
            env=env,
            log_dir=layout.service_dir(self.home, record.name) / "logs",
            run_dir=make_private_dir(runtime_dir(self.home)),
            workspace_key=workspace_key(self.home),
            probe=the_plan.probe,
            drain_s=the_plan.scoring_timeout_ms / 1000 + 5,
            fixed_port=self._fixed_port(the_plan, current),
            shared_port=the_plan.compute_type == "Local",
            resources=the_plan.resources,
            gpus=the_plan.gpu_cores,
            confinement=confinement,
        )

    @staticmethod
    def _fixed_port(the_plan: plan.DeploymentPlan, current: Generation | None) -> int | None:
        """A local service keeps its port across updates, as a v1 LocalWebservice does.

        The new generation binds it beside the old one (SO_REUSEPORT), so an update
        needs no gap; a port that another program holds is a clear error.
        """
        if the_plan.compute_type != "Local":
            return None
        running = _replicas(current)
        held = running[0].port if running else None
        port = the_plan.fixed_port or held
        if port is not None and port != held:
            check_port_free(port)
        return port

    def discard(self, service: str, generation: int) -> None:
        shutil.rmtree(layout.service_dir(self.home, service) / str(generation), True)

    def launch(
        self, prepared: ReplicaSpec, on_change: OnChange, owner: dict[str, Any]
    ) -> LocalGeneration:
        made = LocalGeneration(prepared.deployment, ReplicaSet.create(prepared, on_change, owner))
        return self._follow(prepared.service, made)

    # -- what runs already -----------------------------------------------------------
    async def adopt(self, service: str, on_change: OnChange) -> list[Found]:
        found = []
        for folder in self._generation_folders(service):
            spec = load_deployment(folder)
            owner = deployment_owner(folder)
            if spec is None or owner is None:
                continue
            replicas = ReplicaSet.adopt(spec, on_change)
            await replicas.known()
            if replicas.replicas:
                made = self._follow(service, LocalGeneration(spec.deployment, replicas))
                found.append(Found(made, owner["spec"]))
        return found

    async def clean_up(self, service: str) -> None:
        """Replicas of any generation still running (a roll-out cut short by a crash)."""
        for folder in self._generation_folders(service):
            spec = load_deployment(folder)
            if spec is not None:
                await ReplicaSet.adopt(spec, lambda: None).stop(drain_s=ADOPT_DRAIN_S)
        self._live.pop(service, None)
        await asyncio.to_thread(shutil.rmtree, layout.service_dir(self.home, service), True)

    def _generation_folders(self, service: str) -> list[Path]:
        folder = layout.service_dir(self.home, service)
        found = [p for p in folder.glob("*") if p.name.isdigit() and p.is_dir()]
        return sorted(found, key=lambda p: int(p.name))

    async def logs(self, service: str, current: Generation | None, num_lines: int) -> str:
        return await asyncio.to_thread(self._logs, service, current, num_lines)

    def _logs(self, service: str, current: Generation | None, num_lines: int) -> str:
        folder = layout.service_dir(self.home, service) / "logs"
        files = sorted(folder.glob("replica-*.log"), key=lambda p: p.stat().st_mtime)
        if isinstance(current, LocalGeneration):
            live = current.log_paths()
            files = [f for f in files if f in live] or files[-1:]
        else:
            files = files[-1:]
        per_file = max(1, num_lines // max(1, len(files)))
        return "\n".join(f"=== {f.stem} ===\n{tail(f, per_file)}" for f in files)


def _replicas(generation: Generation | None) -> Sequence[ReplicaStatus]:
    return generation.replicas() if generation is not None else ()


_SECRET_VARIABLES = ("MODELPORT_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def _base_environment() -> dict[str, str]:
    """The server's environment minus its own settings (a database URL may hold a password)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_VARIABLES)}


def derive_replica_key(box: SecretBox, service: str) -> str:
    """A service's replica key (also for a benchmark that reaches a replica directly)."""
    return box.derive(f"replica-key:{service}")
