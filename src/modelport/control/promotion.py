"""Gated promotion: move traffic to a treatment step by step while it stays within bounds
of the control, make it the default and control at the end, roll back the moment it
does not.

Every step, roll-back and the end is an endpoint event with its figures.  While a step
runs, the treatment and the control are compared every half second over the step so
far (``comparison.broken``); at the last step the control takes no traffic, so it is
judged against the control's figures from the step before.  A step that ends with too
few requests to judge rolls back: a promotion never passes on no evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelport.control import comparison
from modelport.control.comparison import Bounds
from modelport.errors import ModelportError
from modelport.spec import endpoint as rules

if TYPE_CHECKING:
    from modelport.control.endpoints import Endpoints

log = logging.getLogger("modelport.control")
CHECK_EVERY_S = 0.5
RUNNING, PROMOTED, ROLLED_BACK, CANCELLED = "Running", "Promoted", "RolledBack", "Cancelled"


@dataclass(frozen=True)
class PromotionSettings:
    version: str
    steps: tuple[int, ...]
    step_seconds: float
    bounds: Bounds

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> PromotionSettings:
        return cls(
            str(doc["version"]),
            tuple(int(s) for s in doc["steps"]),
            float(doc["stepSeconds"]),
            Bounds(
                float(doc["maxErrorRateDelta"]),
                float(doc["maxP99Ratio"]),
                int(doc["minRequests"]),
            ),
        )


class Promotion:
    def __init__(
        self, endpoints: Endpoints, name: str, control: str, settings: PromotionSettings
    ) -> None:
        self.endpoints = endpoints
        self.store = endpoints.store
        self.name = name
        self.control = control
        self.settings = settings
        self.state = RUNNING
        self.step = 0
        self.percent = 0
        self.figures: dict[str, Any] = {}
        self.reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._last_control: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.state == RUNNING

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """The control plane stops: the next one finds the promotion and rolls it back."""
        await self._end_task()

    async def cancel(self) -> None:
        await self._end_task()
        await self._roll_back(["cancelled by the user"], CANCELLED)

    async def _end_task(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def view(self) -> dict[str, Any]:
        s = self.settings
        return {
            "version": s.version,
            "control": self.control,
            "state": self.state,
            "step": self.step,
            "steps": list(s.steps),
            "trafficPercentile": self.percent,
            "stepSeconds": s.step_seconds,
            "maxErrorRateDelta": s.bounds.max_error_rate_delta,
            "maxP99Ratio": s.bounds.max_p99_ratio,
            "minRequests": s.bounds.min_requests,
            "figures": self.figures,
            "reason": self.reason,
        }

    # -- the steps ----------------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        try:
            for index, percent in enumerate(s.steps, start=1):
                self.step, self.percent = index, percent
                await self._set_traffic(percent)
                await self._event(
                    "step",
                    f"step {index} of {len(s.steps)}: {s.version!r} takes {percent}% of the "
                    f"traffic for {s.step_seconds:g} s",
                    {"step": index, "trafficPercentile": percent},
                )
                problems = await self._watch_step()
                if problems:
                    await self._roll_back(problems, ROLLED_BACK)
                    return
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            text = exc.message if isinstance(exc, ModelportError) else repr(exc)
            log.exception("endpoint %s: the promotion failed", self.name)
            await self._roll_back([f"the promotion failed: {text}"], ROLLED_BACK)

    async def _watch_step(self) -> list[str]:
        """Compare over the step until it ends or a bound breaks; the broken bounds."""
        start = await self._counters()
        deadline = time.monotonic() + self.settings.step_seconds
        bounds = self.settings.bounds
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            now = await self._counters()
            latency = now.get("latencyBounds") or []
            control, treatment = self._windows(start, now)
            if sum(control["requests"].values()) >= bounds.min_requests:
                self._last_control = control
            judged = self._last_control or control
            self.figures = {
                "control": comparison.summary(judged, latency),
                "treatment": comparison.summary(treatment, latency),
            }
            problems = comparison.broken(judged, treatment, latency, bounds)
            if problems:
                return problems
            if time.monotonic() >= deadline:
                break
        treated = self.figures["treatment"]["requests"]
        if treated < bounds.min_requests:
            return [
                f"too little traffic to judge: {treated} request(s) reached "
                f"{self.settings.version!r} in {self.settings.step_seconds:g} s, "
                f"{bounds.min_requests} needed"
            ]
        if self._last_control is None:
            return [
                f"too little traffic to judge: {self.figures['control']['requests']} "
                "request(s) reached the "
                f"control {self.control!r}, {bounds.min_requests} needed"
            ]
        return []

    async def _counters(self) -> dict[str, Any]:
        stats = await self.endpoints._read()
        if stats is None:
            raise ModelportError("the router did not answer for its counters")
        return stats

    def _windows(
        self, start: dict[str, Any], now: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the control's and the treatment's counters gained since ``start``."""
        out = []
        for version in (self.control, self.settings.version):
            route = rules.service_name(self.name, version)
            current = now["services"].get(route) or {}
            out.append(comparison.route_window(start["services"].get(route), current))
        return out[0], out[1]

    # -- changes of traffic --------------------------------------------------------------
    async def _set_traffic(self, percent: int) -> None:
        await asyncio.to_thread(
            self.store.update_version, self.name, self.settings.version, None, percent
        )
        await self.endpoints.refresh(self.name)

    async def _finish(self) -> None:
        version = self.settings.version
        await asyncio.to_thread(self.store.update_version, self.name, version, None, 0, True, True)
        await asyncio.to_thread(self.store.update, self.name, {"promotion": None})
        self.state = PROMOTED
        await self._event(
            "promoted",
            f"{version!r} is the default and the control: every step held "
            f"(error rate within {self.settings.bounds.max_error_rate_delta:+.1%}, p99 within "
            f"{self.settings.bounds.max_p99_ratio:.2f}x of {self.control!r})",
            {"figures": self.figures},
        )
        await self.endpoints.refresh(self.name)

    async def _roll_back(self, problems: list[str], state: str) -> None:
        version = self.settings.version
        with contextlib.suppress(ModelportError):  # a version deleted meanwhile
            await asyncio.to_thread(self.store.update_version, self.name, version, None, 0)
        with contextlib.suppress(ModelportError):
            await asyncio.to_thread(self.store.update, self.name, {"promotion": None})
        self.state, self.reason, self.percent = state, "; ".join(problems), 0
        await self._event(
            "rolledBack",
            f"rolled back at step {self.step} ({version!r} at the time had "
            f"{self.settings.steps[max(self.step - 1, 0)]}%): {self.reason}; its traffic went "
            f"back to the control {self.control!r}",
            {"checks": problems, "step": self.step, "figures": self.figures},
        )
        with contextlib.suppress(ModelportError):
            await self.endpoints.refresh(self.name)

    async def _event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        log.info("endpoint %s: %s", self.name, message)
        with contextlib.suppress(ModelportError):
            await asyncio.to_thread(self.store.record_event, self.name, kind, message, data)
