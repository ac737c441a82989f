"""One service's reconciler: drives its replicas toward the stored desired state.

Level-triggered: whenever woken it reads the service record and compares the
stored generation with the one it applied.  A new generation is rolled out by
starting new replicas, waiting until all are ready, switching the route table
(and waiting for the router to take it), then draining the old replicas, so
requests in flight never see a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.autoscale.driver import AutoscaleDriver
from modelport.autoscale.policy import Decision, clamp
from modelport.compute.local.replica import Probe, ReplicaSpec, ReplicaState
from modelport.compute.local.replica_set import ReplicaSet
from modelport.control import layout, plan
from modelport.errors import ModelportError
from modelport.spec.names import parse_model_id
from modelport.store.services import DELETING, FAILED, HEALTHY, UNHEALTHY, ServiceRecord

if TYPE_CHECKING:
    from modelport.control.plane import ControlPlane

log = logging.getLogger("modelport.control")
SHUTDOWN_DRAIN_S = 10.0


@dataclass
class Deployment:
    generation: int
    plan: plan.DeploymentPlan
    replicas: ReplicaSet
    app_root: Path


class ServiceController:
    def __init__(self, name: str, plane: ControlPlane) -> None:
        self.name = name
        self.plane = plane
        self.current: Deployment | None = None
        self.record: ServiceRecord | None = None
        self.applied = 0
        self.rolling_out = False
        self.messages: deque[str] = deque(maxlen=200)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()  # asyncio holds tasks weakly
        self.autoscaler: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def say(self, text: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {text}"
        self.messages.append(stamped)
        log.info("service %s: %s", self.name, text)

    # -- the loop ----------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                record = await asyncio.to_thread(self.plane.services.find, self.name)
                if record is None or record.state == DELETING:
                    await self._delete(record)
                    return
                self.record = record
                if record.generation != self.applied:
                    await self._roll_out(record)
                await self.plane.publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service %s: reconciling failed; retrying", self.name)
                await asyncio.sleep(1.0)
                self.wake.set()

    async def _roll_out(self, record: ServiceRecord) -> None:
        generation = record.generation
        self.messages.clear()
        self.rolling_out = True
        new: Deployment | None = None
        try:
            the_plan = plan.plan(record.spec)
            spec = await asyncio.to_thread(self._prepare, record, the_plan)
            replicas = ReplicaSet(spec, self._on_replica_change)
            new = Deployment(generation, the_plan, replicas, spec.app_root)
            count = self._initial_count(the_plan)
            self.say(f"starting {count} replica(s)")
            replicas.scale_to(count)
            await replicas.wait_ready()
        except Exception as exc:  # whatever broke, this generation failed; the last one serves on
            message = (
                exc.message if isinstance(exc, ModelportError) else f"{type(exc).__name__}: {exc}"
            )
            if not isinstance(exc, ModelportError):
                log.exception("service %s: roll-out of generation %d failed", self.name, generation)
            self.say(f"deployment failed: {message.splitlines()[0]}")
            if new is not None:
                await new.replicas.stop()
            self.applied = generation
            self.rolling_out = False
            await asyncio.to_thread(
                self.plane.services.set_state, self.name, generation, FAILED, message
            )
            return
        self.say(f"{count} replica(s) ready")
        self._stop_autoscaler()
        old, self.current = self.current, new
        self.applied = generation
        await self.plane.publish()  # the router sends new requests to the new replicas only
        self.rolling_out = False
        if old is not None:
            self.say("draining the previous replicas")
            await self._retire(old)
        await asyncio.to_thread(self.plane.services.set_state, self.name, generation, HEALTHY, None)
        self.say("service is Healthy")
        if the_plan.autoscale is not None:
            driver = AutoscaleDriver(
                the_plan.autoscale, count, lambda: self.plane.service_stats(self.name), self._scale
            )
            self.autoscaler = asyncio.get_running_loop().create_task(driver.run())

    def _initial_count(self, the_plan: plan.DeploymentPlan) -> int:
        """A roll-out keeps the count the autoscaler reached, within the new bounds."""
        settings = the_plan.autoscale
        if settings is None or self.current is None or self.current.plan.autoscale is None:
            return the_plan.replicas
        return clamp(len(self.current.replicas.replicas), settings)

    def _stop_autoscaler(self) -> None:
        if self.autoscaler is not None:
            self.autoscaler.cancel()
            self.autoscaler = None

    async def _scale(self, count: int, decision: Decision, inputs: dict[str, Any]) -> None:
        """Apply an autoscaling decision: start replicas, or route around and drain some."""
        current = self.current
        if current is None:
            return
        before = len(current.replicas.replicas)
        surplus = current.replicas.scale_to(count)
        self.say(
            f"{decision.reason}: {before} -> {count} replicas "
            f"(utilization {inputs['utilization']:.2f}, queued {inputs['queued']})"
        )
        await self.plane.publish()  # replicas leaving get no new requests from here on
        await asyncio.to_thread(
            self.plane.workspace.events.record, self.name, before, count, decision.reason, inputs
        )
        for replica in surplus:
            task = asyncio.get_running_loop().create_task(replica.stop())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _prepare(self, record: ServiceRecord, the_plan: plan.DeploymentPlan) -> ReplicaSpec:
        """Blocking work of a roll-out: environment, files (runs in a worker thread)."""
        ws = self.plane.workspace
        built = self.plane.builder.ensure(plan.environment(record.spec), self.say)
        models = [ws.models.get(*parse_model_id(m)) for m in record.spec["models"]]
        basename, files = ws.snapshots.get(record.spec["snapshot"])
        self.say(f"laying out source and {len(models)} model(s)")
        root = layout.lay_out(
            ws.home, self.name, record.generation, ws.blobs, basename, files, models
        )
        inference = plan.inference_config(record.spec)
        entry = f"{basename}/{inference.entry_script}" if basename else inference.entry_script
        env = _base_environment()
        env.update(built.variables)
        env.update(plan.replica_environment(the_plan, self.name))
        env.update(
            {
                "AML_APP_ROOT": str(root),
                "AZUREML_ENTRY_SCRIPT": entry,
                "AZUREML_SOURCE_DIRECTORY": basename,
                "AZUREML_MODEL_DIR": layout.model_dir(root, models),
                "MODELPORT_MODEL_DIR": layout.model_dir(root, models),
                "PYTHONPATH": str(layout.runtime_copy(ws.home)),
                "PYTHONUNBUFFERED": "1",
            }
        )
        probe = Probe(
            the_plan.period_s,
            the_plan.timeout_s,
            the_plan.failure_threshold,
            the_plan.startup_deadline_s,
        )
        return ReplicaSpec(
            service=self.name,
            deployment=record.generation,
            python=built.python,
            app_root=root,
            env=env,
            log_dir=layout.service_dir(ws.home, self.name) / "logs",
            probe=probe,
            drain_s=the_plan.scoring_timeout_ms / 1000 + 5,
            fixed_port=the_plan.fixed_port,
        )

    async def _retire(self, old: Deployment, drain: bool = True) -> None:
        if not drain:
            for r in old.replicas.replicas:
                r.spec = _short_drain(r.spec)
        await old.replicas.stop()
        await asyncio.to_thread(shutil.rmtree, old.app_root.parent, True)

    async def _delete(self, record: ServiceRecord | None) -> None:
        self._stop_autoscaler()
        self.plane.forget(self.name)
        await self.plane.publish()
        if self.current is not None:
            self.say("deleting: draining replicas")
            await self._retire(self.current)
            self.current = None
        if record is not None:
            await asyncio.to_thread(self.plane.services.remove, self.name)
            await asyncio.to_thread(self.plane.workspace.events.forget, self.name)
        await asyncio.to_thread(
            shutil.rmtree, layout.service_dir(self.plane.workspace.home, self.name), True
        )

    async def shutdown(self) -> None:
        """The server is stopping: end the replicas quickly (they restart with it)."""
        self._stop_autoscaler()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.current is not None:
            await self._retire(self.current, drain=False)

    # -- health --------------------------------------------------------------------
    def _on_replica_change(self) -> None:
        self.plane.schedule_publish()
        current = self.current
        if self.rolling_out or current is None or current.generation != self.applied:
            return
        ready = len(current.replicas.ready())
        state = HEALTHY if ready == len(current.replicas.replicas) else UNHEALTHY
        error = None if state == HEALTHY else self._replica_error(current)
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(
                self.plane.services.set_state, self.name, current.generation, state, error
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    def _replica_error(deployment: Deployment) -> str:
        states = [r.state for r in deployment.replicas.replicas]
        ready = sum(s == ReplicaState.READY for s in states)
        text = f"{ready} of {len(states)} replicas ready"
        errors = [r.error for r in deployment.replicas.replicas if r.error]
        return f"{text}; last replica error: {errors[-1]}" if errors else text

    def route(self) -> dict[str, Any] | None:
        """This service's entry in the router's table."""
        record = self.record
        if record is None:
            return None
        current = self.current
        ready = current.replicas.ready() if current is not None else []
        the_plan = current.plan if current is not None else plan.plan(record.spec)
        return {
            "auth": the_plan.auth,
            "keyDigests": [_digest(record.primary_key), _digest(record.secondary_key)],
            "replicas": [["127.0.0.1", r.port] for r in ready],
            "scoringTimeoutMs": the_plan.scoring_timeout_ms,
            "maxConcurrent": the_plan.max_concurrent,
            "maxWaitMs": the_plan.max_wait_ms,
            "maxQueue": the_plan.max_queue,
        }

    def replica_views(self) -> list[dict[str, Any]]:
        if self.current is None:
            return []
        return [
            {
                "index": r.index,
                "port": r.port,
                "state": str(r.state),
                "restarts": r.restarts,
                "probesPassed": r.probes_passed,
            }
            for r in self.current.replicas.replicas
        ]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _short_drain(spec: ReplicaSpec) -> ReplicaSpec:
    return replace(spec, drain_s=min(spec.drain_s, SHUTDOWN_DRAIN_S))


_SECRET_VARIABLES = ("MODELPORT_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def _base_environment() -> dict[str, str]:
    """The server's environment minus its own settings (a database URL may hold a password)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_VARIABLES)}
