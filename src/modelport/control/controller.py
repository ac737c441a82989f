"""One service's reconciler: drives its replicas toward the stored desired state.

Level-triggered: whenever woken it reads the service record and compares the
stored generation with the one it applied.  A new generation is rolled out by
starting new replicas, waiting until all are ready, switching the route table
(and waiting for the router to take it), then draining the old replicas, so
requests in flight never see a gap.  A roll-out runs as a task of its own: a
newer generation or a delete cancels it at once, whatever state its replicas
are in (an ``init()`` that hangs included).  Replicas outlive the control plane;
:meth:`ServiceController.adopt` takes over the ones a previous control plane
left running instead of starting new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelport.autoscale.driver import AutoscaleDriver
from modelport.autoscale.policy import Decision, clamp
from modelport.compute import plan
from modelport.compute.layout import model_data_root
from modelport.compute.target import (
    ClusterTarget,
    ComputeTarget,
    Generation,
    ReplicaState,
    ReplicaStatus,
)
from modelport.errors import ModelportError, UnschedulableError
from modelport.spec.endpoint import split_name
from modelport.store.services import (
    DELETING,
    FAILED,
    HEALTHY,
    TRANSITIONING,
    UNHEALTHY,
    UNSCHEDULABLE,
    ServiceRecord,
)

if TYPE_CHECKING:
    from modelport.control.plane import ControlPlane

log = logging.getLogger("modelport.control")
SHUTDOWN_DRAIN_S = 10.0


@dataclass
class Deployment:
    generation: int
    plan: plan.DeploymentPlan
    replicas: Generation


class ServiceController:
    def __init__(self, name: str, plane: ControlPlane) -> None:
        self.name = name
        self.plane = plane
        self.current: Deployment | None = None
        self.pending: Deployment | None = None  # being rolled out
        self.record: ServiceRecord | None = None
        self.target: ComputeTarget = plane.default_target  # the record's, once read
        self.applied = 0
        self.messages: deque[str] = deque(maxlen=200)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.rollout: asyncio.Task[None] | None = None
        self._target = 0  # the generation the roll-out in progress brings
        self._switching = False  # past the point where a roll-out may be cancelled
        self._background: set[asyncio.Task[None]] = set()  # asyncio holds tasks weakly
        self.autoscaler: asyncio.Task[None] | None = None
        self._limits_said = False
        self._letting_go = False  # stopping: a cluster's replicas are left running
        self._placement = TRANSITIONING  # or UNSCHEDULABLE, during a roll-out

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.wake.set()

    def say(self, text: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {text}"
        self.messages.append(stamped)
        log.info("service %s: %s", self.name, text)

    @property
    def rolling_out(self) -> bool:
        return self.rollout is not None and not self.rollout.done()

    # -- adopting what a previous control plane left running -------------------------
    async def adopt(self, record: ServiceRecord) -> None:
        """Follow the live replicas of this service again; stop what is no longer wanted."""
        self.record = record
        self.target = self.plane.target_for(record.spec)
        found = await self.target.adopt(self.name, self._on_replica_change)
        keep = None
        if record.state != DELETING:
            usable = [f for f in found if f.generation.generation <= record.generation]
            serving = [f for f in usable if f.serving]
            if serving or any(f.serving is not None for f in usable):
                keep = serving[-1] if serving else None  # the target knows what serves
            else:
                keep = usable[-1] if usable else None
        for entry in found:
            if entry is keep:
                continue
            if self._rolled_out_again(entry.generation, record):
                self._in_background(entry.generation.let_go())
            else:
                self._in_background(entry.generation.stop(drain_s=SHUTDOWN_DRAIN_S))
        if keep is not None:
            generation = keep.generation.generation
            self.current = Deployment(generation, plan.plan(keep.spec), keep.generation)
            self.applied = generation
            count = len(keep.generation.replicas())
            self.say(f"adopted {count} running replica(s) of generation {generation}")
            self._start_autoscaler(count)
        if record.state == FAILED:
            self.applied = record.generation  # a failed roll-out is not retried by a restart
        elif keep is None and record.state != DELETING:
            self.say("no replica was running when the control plane started: starting them")

    def _rolled_out_again(self, generation: Generation, record: ServiceRecord) -> bool:
        """A cluster's generation whose roll-out a stop cut short is rolled out again
        (its objects are applied anew, so nothing is made twice), not deleted."""
        return (
            self.target.keeps_running
            and generation.generation == record.generation
            and record.state not in (FAILED, DELETING)
        )

    # -- the loop ----------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                record = await asyncio.to_thread(self.plane.services.find, self.name)
                if record is not None:
                    self.target = self.plane.target_for(record.spec)
                if record is None or record.state == DELETING:
                    await self._cancel_rollout()
                    await self._delete(record)
                    return
                self.record = record
                wanted = record.generation
                if wanted != self.applied and not (self.rolling_out and self._target == wanted):
                    await self._cancel_rollout()
                    self._target = wanted
                    self.rollout = asyncio.get_running_loop().create_task(self._roll_out(record))
                await self.plane.publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service %s: reconciling failed; retrying", self.name)
                await asyncio.sleep(1.0)
                self.wake.set()

    async def _cancel_rollout(self) -> None:
        """A newer generation or a delete supersedes the roll-out in progress."""
        task = self.rollout
        if task is None or task.done():
            return
        if not self._switching:
            task.cancel()
        await _finished(task)

    async def _roll_out(self, record: ServiceRecord) -> None:
        generation = record.generation
        self._placement = TRANSITIONING
        self.messages.clear()
        self.pending = None
        if record.state != TRANSITIONING:  # e.g. started again after a control-plane restart
            await self._set_state(generation, TRANSITIONING, None)
        target = self.target
        prepared: asyncio.Future[Any] | None = None
        try:
            the_plan = plan.plan(record.spec)
            current = self.current.replicas if self.current is not None else None
            prepared = asyncio.ensure_future(
                asyncio.to_thread(target.prepare, record, the_plan, current, self.say)
            )
            made = await asyncio.shield(prepared)
            replicas = target.launch(made, self._on_replica_change, {"spec": record.spec})
            self.pending = Deployment(generation, the_plan, replicas)
            count = self._initial_count(the_plan)
            self.say(f"starting {count} replica(s)")
            replicas.scale_to(count)
            await self.plane.publish()
            await replicas.wait_ready()
        except asyncio.CancelledError:
            if prepared is not None and not prepared.done():
                # The build or copy goes on in its thread: clear what it made when it ends.
                prepared.add_done_callback(lambda done: self._clear_after(done, generation))
            await self._abandon("superseded")
            raise
        except Exception as exc:  # whatever broke, this generation failed; the last one serves on
            message = (
                exc.message if isinstance(exc, ModelportError) else f"{type(exc).__name__}: {exc}"
            )
            if not isinstance(exc, ModelportError):
                log.exception("service %s: roll-out of generation %d failed", self.name, generation)
            self.say(f"deployment failed: {message.splitlines()[0]}")
            await self._abandon("failed")
            self.applied = generation
            state = UNSCHEDULABLE if isinstance(exc, UnschedulableError) else FAILED
            await self._set_state(generation, state, message)
            return
        self._switching = True
        try:
            await self._switch(generation, the_plan, count)
        finally:
            self._switching = False

    def _clear_after(self, done: asyncio.Future[Any], generation: int) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: a failure there no longer matters
        self._in_background(asyncio.to_thread(self.target.discard, self.name, generation))

    async def _abandon(self, why: str) -> None:
        new, self.pending = self.pending, None
        if new is not None and self._letting_go:
            await asyncio.shield(new.replicas.let_go())  # the next start rolls it out again
        elif new is not None:
            # Shielded: a second cancel must not leave these replicas running.
            await asyncio.shield(new.replicas.stop(drain_s=0))
        log.info("service %s: roll-out %s", self.name, why)

    async def _switch(self, generation: int, the_plan: plan.DeploymentPlan, count: int) -> None:
        new, self.pending = self.pending, None
        assert new is not None
        self.say(f"{count} replica(s) ready")
        self._stop_autoscaler()
        old, self.current = self.current, new
        self.applied = generation
        await self.plane.publish()  # the router sends new requests to the new replicas only
        if old is not None:
            self.say("draining the previous replicas")
            await self._retire(old)
        await self._set_state(generation, HEALTHY, None)
        self.say("service is Healthy")
        self._start_autoscaler(count)

    def _start_autoscaler(self, count: int) -> None:
        current = self.current
        if current is None or current.plan.autoscale is None:
            return
        driver = AutoscaleDriver(
            current.plan.autoscale, count, lambda: self.plane.service_stats(self.name), self._scale
        )
        self.autoscaler = asyncio.get_running_loop().create_task(driver.run())

    async def _set_state(self, generation: int, state: str, error: str | None) -> None:
        await asyncio.to_thread(self.plane.services.set_state, self.name, generation, state, error)

    def _initial_count(self, the_plan: plan.DeploymentPlan) -> int:
        """A roll-out keeps the count the autoscaler reached, within the new bounds."""
        settings = the_plan.autoscale
        if settings is None or self.current is None or self.current.plan.autoscale is None:
            return the_plan.replicas
        return clamp(len(self.current.replicas.replicas()), settings)

    def _stop_autoscaler(self) -> None:
        if self.autoscaler is not None:
            self.autoscaler.cancel()
            self.autoscaler = None

    async def _scale(self, count: int, decision: Decision, inputs: dict[str, Any]) -> None:
        """Apply an autoscaling decision: start replicas, or route around and drain some."""
        current = self.current
        if current is None:
            return
        before = len(current.replicas.replicas())
        finish = current.replicas.scale_to(count)
        self.plane.counters.decided(self.name, "up" if count > before else "down")
        self.say(
            f"{decision.reason}: {before} -> {count} replicas "
            f"(utilization {inputs['utilization']:.2f}, queued {inputs['queued']})"
        )
        await self.plane.publish()  # replicas leaving get no new requests from here on
        await asyncio.to_thread(
            self.plane.workspace.events.record, self.name, before, count, decision.reason, inputs
        )
        self._in_background(finish())

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retire(self, old: Deployment, drain_s: float | None = None) -> None:
        await old.replicas.stop(drain_s)

    async def _delete(self, record: ServiceRecord | None) -> None:
        self._stop_autoscaler()
        version = split_name(self.name)
        if version is not None and self.current is not None:
            # An endpoint's version: out of the split first, then its requests finish.
            await self.plane.endpoints.refresh(version[0])
            the_plan = self.current.plan
            await self.plane.until_idle(
                self.name, (the_plan.max_wait_ms + the_plan.scoring_timeout_ms) / 1000
            )
        self.plane.forget(self.name)
        await self.plane.publish()
        if self.current is not None:
            self.say("deleting: draining replicas")
            await self._retire(self.current)
            self.current = None
        await self.target.clean_up(self.name)
        if record is not None:
            await asyncio.to_thread(self.plane.services.remove, self.name)
            await asyncio.to_thread(self.plane.workspace.events.forget, self.name)
        if version is not None:  # a deleted endpoint goes with its last version
            await self.plane.endpoints.refresh(version[0])

    async def shutdown(self) -> None:
        """The server is stopping: end local replicas quickly (they start again with it);
        a cluster's serve on, and the next control plane adopts them."""
        self._stop_autoscaler()
        self._letting_go = self.target.keeps_running
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self._cancel_rollout()
        if self.current is not None and self._letting_go:
            await self.current.replicas.let_go()
        elif self.current is not None:
            await self._retire(self.current, drain_s=SHUTDOWN_DRAIN_S)
        self.current = None
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- health --------------------------------------------------------------------
    def _on_replica_change(self) -> None:
        self.plane.schedule_publish()
        current = self.current
        if current is not None:
            self._say_limits(current)
        if self.rolling_out:
            self._note_placement()
            return
        if current is None or current.generation != self.applied:
            return
        statuses = current.replicas.replicas()
        ready = sum(r.ready for r in statuses)
        state = HEALTHY if ready == len(statuses) else UNHEALTHY
        error = None if state == HEALTHY else self._replica_error(current)
        self._in_background(self._set_state(current.generation, state, error))

    def _note_placement(self) -> None:
        """During a roll-out: Unschedulable (with the scheduler's reason) while a new
        replica has no node, Transitioning again once all are placed."""
        pending = self.pending
        if pending is None:
            return
        waiting = [r for r in pending.replicas.replicas() if r.state == ReplicaState.UNSCHEDULABLE]
        state = UNSCHEDULABLE if waiting else TRANSITIONING
        if state == self._placement:
            return
        self._placement = state
        error = waiting[0].error if waiting else None
        if waiting:
            self.say(f"{len(waiting)} replica(s) cannot be scheduled: {error}")
        self._in_background(self._set_state(pending.generation, state, error))

    def _say_limits(self, deployment: Deployment) -> None:
        """Once per service: CPU and memory settings this machine cannot enforce."""
        notes = {r.limits for r in deployment.replicas.replicas() if r.limits}
        unenforced = [n for n in notes if n.startswith("not enforced")]
        if unenforced and not self._limits_said:
            self._limits_said = True
            self.say(f"warning: cpu_cores/memory_gb settings are {unenforced[0]}")

    @staticmethod
    def _replica_error(deployment: Deployment) -> str:
        statuses = deployment.replicas.replicas()
        ready = sum(r.ready for r in statuses)
        text = f"{ready} of {len(statuses)} replicas ready"
        errors = [r.error for r in statuses if r.error]
        return f"{text}; last replica error: {errors[-1]}" if errors else text

    def progress(self) -> str | None:
        """What a roll-out waits for, e.g. ``init() running for 4m10s on replica 0``."""
        pending = self.pending
        if pending is None:
            return None
        now = time.time()
        waiting = [
            (r.index, now - r.started_at)
            for r in pending.replicas.replicas()
            if r.state in (ReplicaState.STARTING, ReplicaState.CRASHED) and r.started_at
        ]
        if not waiting:
            return None
        index, seconds = max(waiting, key=lambda w: w[1])
        return f"init() running for {_duration(seconds)} on replica {index}"

    def route(self) -> dict[str, Any] | None:
        """This service's entry in the router's table."""
        record = self.record
        if record is None:
            return None
        current = self.current
        ready = [r for r in current.replicas.replicas() if r.ready] if current is not None else []
        the_plan = current.plan if current is not None else plan.plan(record.spec)
        key = self.target.replica_key(self.name, the_plan)
        return {
            **({"replicaKey": key} if key else {}),
            "auth": the_plan.auth,
            "tokenAuth": the_plan.token_auth,
            "audience": self.name,
            "keyDigests": [key_digest(record.primary_key), key_digest(record.secondary_key)],
            "replicas": [[r.host, r.port] for r in ready],
            "exitFiles": {str(r.port): r.exit_file for r in ready if r.exit_file},
            "unixSockets": {str(r.port): r.unix_socket for r in ready if r.unix_socket},
            "starting": current is None and record.state != FAILED,
            "generation": current.generation if current is not None else None,
            "scoringTimeoutMs": the_plan.scoring_timeout_ms,
            "maxConcurrent": the_plan.slots,
            "batching": the_plan.batching,  # whole batches per router worker (shares.py)
            "maxWaitMs": the_plan.max_wait_ms,
            "maxQueue": the_plan.max_queue,
            "pipelining": the_plan.pipelining,
            "tracing": the_plan.tracing,
            **self._capture(the_plan),
        }

    def _capture(self, the_plan: plan.DeploymentPlan) -> dict[str, Any]:
        """The router's capture of this service's traffic: into the service's folder
        here, or, by a cluster's router pods, through the control plane to it."""
        settings = the_plan.capture
        if settings is None:
            return {}
        entry: dict[str, Any] = {
            "rate": settings.rate,
            "maxBytes": settings.max_bytes,
            "redact": list(settings.redact),
            "service": self.name,
            "version": "default",
        }
        if not isinstance(self.target, ClusterTarget):
            entry["dir"] = str(model_data_root(self.plane.workspace.home) / self.name)
        return {"capture": entry}

    def replica_views(self) -> list[dict[str, Any]]:
        deployment = self.current or self.pending
        if deployment is None:
            return []
        return [_replica_view(r, deployment.generation) for r in deployment.replicas.replicas()]


async def _finished(task: asyncio.Task[None]) -> None:
    """Wait for a task we may have cancelled, without swallowing a cancel of our own
    (which would leave the caller running on after its owner stopped it)."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def _replica_view(r: ReplicaStatus, generation: int) -> dict[str, Any]:
    return {
        "index": r.index,
        "port": r.port,
        "state": str(r.state),
        "restarts": r.restarts,
        "probesPassed": r.probes_passed,
        "generation": generation,
        "startedAt": r.started_at,
        "pid": r.pid,
        "limits": r.limits,
    }


def key_digest(key: str) -> str:
    """What the router holds of a key: its SHA-256, compared in constant time."""
    return hashlib.sha256(key.encode()).hexdigest()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
