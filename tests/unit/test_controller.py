"""The service controller over a fake compute target: roll-outs, failures, adoption, delete.

No process, pod or socket: the fake's replicas change state when the test says so,
and the test waits on the controller's own conditions with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from modelport.compute.target import Found, ReplicaState
from modelport.control.controller import ServiceController
from modelport.metrics import ControlCounters
from modelport.store.services import DELETING, FAILED, HEALTHY, TRANSITIONING, ServiceRecord

from .fake_compute import FakeGeneration, FakeTarget

DEADLINE_S = 5.0
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _spec(replicas: int = 2) -> dict[str, Any]:
    return {
        "deploymentConfig": {
            "computeType": "aks",
            "numReplicas": replicas,
            "autoScaler": {"autoscaleEnabled": False},
        },
        "inferenceConfig": {"entryScript": "score.py"},
        "models": [],
    }


@dataclass
class FakeServices:
    record: ServiceRecord | None
    states: list[tuple[int, str, str | None]] = field(default_factory=list)

    def find(self, name: str) -> ServiceRecord | None:
        return self.record

    def set_state(self, name: str, generation: int, state: str, error: str | None) -> None:
        self.states.append((generation, state, error))
        if self.record is not None and self.record.generation == generation:
            self.record = replace(self.record, state=state, error=error)

    def remove(self, name: str) -> None:
        self.record = None


class FakeEvents:
    def record(self, *args: Any) -> None:
        return None

    def forget(self, name: str) -> None:
        return None


@dataclass
class FakeWorkspace:
    events: FakeEvents = field(default_factory=FakeEvents)


class FakePlane:
    def __init__(self, record: ServiceRecord) -> None:
        self.target = FakeTarget()
        self.services = FakeServices(record)
        self.workspace = FakeWorkspace()
        self.published = 0
        self.forgotten: list[str] = []
        self.counters = ControlCounters()

    @property
    def default_target(self) -> FakeTarget:
        return self.target

    def target_for(self, spec: dict[str, Any]) -> FakeTarget:
        return self.target

    async def publish(self) -> None:
        self.published += 1

    def schedule_publish(self) -> None:
        self.published += 1

    def forget(self, name: str) -> None:
        self.forgotten.append(name)

    async def service_stats(self, name: str) -> dict[str, Any] | None:
        return None


def _record(generation: int = 1, state: str = TRANSITIONING, replicas: int = 2) -> ServiceRecord:
    now = datetime.now(UTC)
    return ServiceRecord("svc", generation, _spec(replicas), state, None, "k1", "k2", now, now)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await asyncio.sleep(0)


def _state(plane: FakePlane) -> str | None:
    return plane.services.states[-1][1] if plane.services.states else None


def _controller(plane: FakePlane) -> ServiceController:
    return ServiceController("svc", plane)  # type: ignore[arg-type]


async def _serving() -> tuple[FakePlane, ServiceController, FakeGeneration]:
    """A new service whose first generation is ready and Healthy."""
    plane = FakePlane(_record())
    controller = _controller(plane)
    controller.start()
    first = await _launched(plane, 1)
    first.become(ReplicaState.READY)
    await _until(lambda: _state(plane) == HEALTHY)
    return plane, controller, first


async def _launched(plane: FakePlane, count: int) -> FakeGeneration:
    await _until(lambda: len(plane.target.launched) >= count)
    return plane.target.launched[count - 1]


async def test_a_new_service_is_healthy_once_its_replicas_are_ready() -> None:
    plane = FakePlane(_record())
    controller = _controller(plane)
    controller.start()
    first = await _launched(plane, 1)
    assert len(first.replicas()) == 2
    route = controller.route()
    assert route is not None and route["starting"] and route["replicas"] == []
    first.become(ReplicaState.READY)
    await _until(lambda: _state(plane) == HEALTHY)
    route = controller.route()
    assert route is not None and [r[1] for r in route["replicas"]] == [10100, 10101]
    await controller.shutdown()
    assert first.stopped


async def test_an_update_moves_traffic_only_when_the_new_replicas_are_ready() -> None:
    plane, controller, first = await _serving()
    plane.services.record = _record(generation=2, replicas=3)
    controller.wake.set()
    second = await _launched(plane, 2)
    route = controller.route()
    assert route is not None and len(route["replicas"]) == 2  # still the first generation
    assert not first.stopped
    second.become(ReplicaState.READY)
    await _until(lambda: first.stopped)
    route = controller.route()
    assert route is not None and [r[1] for r in route["replicas"]] == [10200, 10201, 10202]
    await _until(lambda: plane.services.states[-1][:2] == (2, HEALTHY))
    await controller.shutdown()


async def test_a_failed_roll_out_keeps_the_last_generation_serving() -> None:
    plane, controller, first = await _serving()
    plane.services.record = _record(generation=2)
    controller.wake.set()
    second = await _launched(plane, 2)
    second.become(ReplicaState.FAILED, "init() raised ValueError: no model")
    await _until(lambda: _state(plane) == FAILED)
    generation, _, error = plane.services.states[-1]
    assert generation == 2 and error is not None and "no model" in error
    assert second.stopped and not first.stopped
    route = controller.route()
    assert route is not None and len(route["replicas"]) == 2
    await controller.shutdown()


async def test_a_restarted_control_plane_adopts_what_runs_and_stops_older_generations() -> None:
    plane = FakePlane(_record(generation=2, state=HEALTHY))
    old = FakeGeneration(1, lambda: None)
    old.scale_to(1)
    live = FakeGeneration(2, lambda: None)
    live.scale_to(2)
    live.become(ReplicaState.READY)
    plane.target.running["svc"] = [Found(old, _spec(1)), Found(live, _spec(2))]
    controller = _controller(plane)
    record = plane.services.record
    assert record is not None
    await controller.adopt(record)
    assert controller.current is not None and controller.current.replicas is live
    await _until(lambda: old.stopped)
    controller.start()
    await _until(lambda: plane.published > 0)
    assert plane.target.launched == []  # nothing started again
    await controller.shutdown()


async def test_deleting_cleans_up_everything_on_the_target() -> None:
    plane, controller, first = await _serving()
    record = plane.services.record
    assert record is not None
    plane.services.record = replace(record, state=DELETING)
    controller.wake.set()
    assert controller.task is not None
    await asyncio.wait_for(controller.task, DEADLINE_S)
    assert first.stopped and plane.target.cleaned == ["svc"]
    assert plane.services.record is None and plane.forgotten == ["svc"]


async def test_each_autoscaling_change_is_counted_by_direction() -> None:
    plane, controller, first = await _serving()
    inputs = {"utilization": 0.9, "queued": 0}
    await controller._scale(4, SimpleNamespace(reason="scale up"), inputs)  # type: ignore[arg-type]
    await controller._scale(3, SimpleNamespace(reason="scale down"), inputs)  # type: ignore[arg-type]
    await controller._scale(2, SimpleNamespace(reason="scale down"), inputs)  # type: ignore[arg-type]
    assert plane.counters.decisions == {("svc", "up"): 1, ("svc", "down"): 2}
    assert len(first.replicas()) == 2
    await controller.shutdown()
