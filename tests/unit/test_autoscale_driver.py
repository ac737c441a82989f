"""The autoscaler loop with fake counters and a fake scaler (no processes, no sleeps)."""

from __future__ import annotations

import asyncio
from typing import Any

from modelport.autoscale.driver import AutoscaleDriver
from modelport.autoscale.policy import AutoscaleSettings, Decision


class Fakes:
    def __init__(self) -> None:
        self.time = 0.0
        self.busy_total = 0.0
        self.busy_now = 0.0
        self.queued = 0
        self.ready = 1
        self.calls: list[tuple[int, str, dict[str, Any]]] = []

    def advance(self, seconds: float) -> None:
        self.time += seconds
        self.busy_total += self.busy_now * seconds

    async def read(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "busySecondsTotal": self.busy_total,
            "ready": self.ready,
            "queued": self.queued,
        }

    async def scale(self, count: int, decision: Decision, inputs: dict[str, Any]) -> None:
        self.calls.append((count, decision.reason, inputs))
        self.ready = count


def test_driver_scales_on_averaged_busy_time_and_records_inputs() -> None:
    fakes = Fakes()
    settings = AutoscaleSettings(
        min_replicas=1, max_replicas=10, target_utilization=0.7, down_window_s=5
    )
    driver = AutoscaleDriver(settings, 1, fakes.read, fakes.scale)

    async def go() -> None:
        assert await driver.step() is None  # the first read only sets the baseline
        fakes.busy_now, fakes.queued = 1.0, 3
        fakes.advance(1.0)
        decision = await driver.step()
        assert decision is not None and decision.replicas == 6  # (1 + 3) / 0.7 -> 6
        fakes.busy_now, fakes.queued = 4.0, 0
        for _ in range(3):
            fakes.advance(1.0)
            await driver.step()  # 4 / 0.7 -> 6: steady
        fakes.busy_now = 0.0
        for _ in range(6):
            fakes.advance(1.0)
            await driver.step()

    asyncio.run(go())
    assert [(c, r) for c, r, _ in fakes.calls] == [(6, "scale up"), (1, "scale down")]
    inputs = fakes.calls[0][2]
    assert inputs["queued"] == 3 and inputs["busy"] == 1.0 and inputs["needed"] == 6
    assert inputs["target"] == 0.7 and inputs["windowSeconds"] == 5
