"""The autoscaler's loop for one service: read the router's counters, decide, act.

Side effects come in as callables (read the counters, change the replica count),
so the loop is tested with fakes and a fast clock; the policy stays pure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelport.autoscale.policy import AutoscaleSettings, Decision, Observation, PolicyState, decide

log = logging.getLogger("modelport.autoscale")

ReadStats = Callable[[], Awaitable[dict[str, Any] | None]]
Scale = Callable[[int, Decision, dict[str, Any]], Awaitable[None]]


class AutoscaleDriver:
    def __init__(
        self, settings: AutoscaleSettings, replicas: int, read_stats: ReadStats, scale: Scale
    ) -> None:
        self.settings = settings
        self.state = PolicyState(replicas)
        self.read_stats = read_stats
        self.scale = scale
        self._last: tuple[float, float] | None = None  # (router time, busy seconds)

    def observe(self, stats: dict[str, Any]) -> Observation | None:
        """Average busy replicas since the last read, from the busy-time integral."""
        now, busy_total = float(stats["time"]), float(stats["busySecondsTotal"])
        last, self._last = self._last, (now, busy_total)
        if last is None or now <= last[0]:
            return None
        ready = int(stats["ready"])
        # Router workers sharing a replica may both count it busy: never more than ready.
        busy = min(max(0.0, (busy_total - last[1]) / (now - last[0])), float(ready))
        return Observation(now=now, ready=ready, busy=busy, queued=int(stats["queued"]))

    async def step(self) -> Decision | None:
        stats = await self.read_stats()
        if stats is None:
            return None
        obs = self.observe(stats)
        if obs is None:
            return None
        decision = decide(self.settings, obs, self.state)
        if decision.replicas != self.state.replicas:
            inputs = {
                "utilization": round(decision.utilization, 3),
                "busy": round(obs.busy, 3),
                "queued": obs.queued,
                "ready": obs.ready,
                "needed": decision.needed,
                "target": self.settings.target_utilization,
                "min": self.settings.min_replicas,
                "max": self.settings.max_replicas,
                "windowSeconds": self.settings.down_window_s,
            }
            await self.scale(decision.replicas, decision, inputs)
        self.state = decision.state
        return decision

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("autoscaling step failed; trying again next period")
