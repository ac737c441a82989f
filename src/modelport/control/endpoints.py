"""The control plane's endpoints: what the router is told about them, their statistics
and their promotions.

Each version runs as a service of its own (its controller rolls it out, scales and
drains it); this module keeps the endpoints' records in memory, turns them into the
router's ``endpoints`` table (shares, sticky key, shadows) with each version's route
hidden behind the endpoint's name and keys, and keeps a history of the router's
counters so versions can be compared over a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.control import comparison
from modelport.control.controller import key_digest
from modelport.control.promotion import Promotion, PromotionSettings
from modelport.errors import (
    ConflictError,
    InvalidInputError,
    ModelportError,
    ServerUnavailableError,
)
from modelport.spec import endpoint as rules
from modelport.store.endpoints import EndpointRecord

if TYPE_CHECKING:
    from modelport.control.plane import ControlPlane

log = logging.getLogger("modelport.control")
SAMPLE_EVERY_S = 5.0
KEEP_S = 3600.0


class Endpoints:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store = plane.workspace.endpoints
        self.records: dict[str, EndpointRecord] = {}
        self.promotions: dict[str, Promotion] = {}
        self.samples: deque[tuple[float, dict[str, Any]]] = deque()
        self._sampler: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Load every endpoint; a promotion a stopped control plane left half done is
        rolled back (its traffic goes back to the control)."""
        for record in await asyncio.to_thread(self.store.list):
            self.records[record.name] = record
            if record.spec.get("promotion") and not record.deleting:
                await self._interrupted(record)
        self._sampler = asyncio.get_running_loop().create_task(self._sample())

    def after_start(self) -> None:
        """Endpoints deleted while no control plane ran go once their versions have."""
        for name, record in list(self.records.items()):
            if record.deleting:
                self.notify(name)

    async def stop(self) -> None:
        for promotion in list(self.promotions.values()):
            await promotion.stop()
        for task in [self._sampler, *self._refreshing.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- records --------------------------------------------------------------------
    def notify(self, name: str) -> None:
        """Endpoint ``name`` changed in the store (callable from any thread)."""
        assert self.plane.loop is not None
        self.plane.loop.call_soon_threadsafe(self._kick, name)

    def _kick(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self.refresh(name))
        self._refreshing[name] = task
        task.add_done_callback(lambda t: self._refreshing.pop(name, None) if t is task else None)

    async def refresh(self, name: str) -> None:
        """Read the endpoint again and give the router its new table."""
        record = await asyncio.to_thread(self.store.find, name)
        if (
            record is not None
            and record.deleting
            and await asyncio.to_thread(self.store.remove_if_done, name)
        ):
            record = None
        if record is None:
            self.records.pop(name, None)
            promotion = self.promotions.pop(name, None)
            if promotion is not None:
                await promotion.stop()
        else:
            self.records[name] = record
        await self.plane.publish()

    def serving(self, record: EndpointRecord) -> set[str]:
        """The versions with replicas serving (a roll-out done)."""
        out = set()
        for version in record.versions:
            controller = self.plane.controllers.get(record.service(version.name))
            if controller is not None and controller.current is not None:
                out.add(version.name)
        return out

    # -- the router's table -------------------------------------------------------------
    def table(self, routes: dict[str, Any]) -> dict[str, Any]:
        """The router's ``endpoints`` entries; each version's route in ``routes`` is
        hidden behind its endpoint and takes the endpoint's auth and keys."""
        out: dict[str, Any] = {}
        for record in self.records.values():
            digests = [key_digest(record.primary_key), key_digest(record.secondary_key)]
            token_auth = bool(record.spec.get("tokenAuthEnabled", False))
            auth = bool(record.spec.get("authEnabled", True)) or token_auth
            for service in record.services:
                if service in routes:
                    routes[service] = {
                        **routes[service],
                        "hidden": True,
                        "auth": auth,
                        "tokenAuth": token_auth,
                        "audience": record.name,  # tokens name the endpoint, not a version
                        "keyDigests": digests,
                    }
                    _captured_as_version(routes[service], record.name, service)
            if record.deleting:
                continue
            serving = self.serving(record)
            shares = rules.live_shares(record.versions, serving)
            versions = [
                {"name": v.name, "share": shares[v.name], "route": record.service(v.name)}
                for v in record.versions
                if record.service(v.name) in routes and not v.shadow_percentile
            ]
            if not versions or not any(v["share"] for v in versions):
                continue
            entry: dict[str, Any] = {"versions": versions}
            shadows = [
                {"name": v.name, "route": record.service(v.name), "percent": v.shadow_percentile}
                for v in record.versions
                if v.shadow_percentile and v.name in serving
            ]
            if shadows:
                entry["shadows"] = shadows
                entry["tolerance"] = float(record.spec.get("tolerance", rules.TOLERANCE))
            if record.spec.get("sticky"):
                entry["sticky"] = record.spec["sticky"]
            out[record.name] = entry
        return out

    # -- statistics ---------------------------------------------------------------------
    async def _sample(self) -> None:
        """Keep the router's counters every few seconds for an hour: the windows."""
        while True:
            stats = await self._read()
            now = time.monotonic()
            if stats is not None:
                self.samples.append((now, stats))
            while self.samples and self.samples[0][0] < now - KEEP_S:
                self.samples.popleft()
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _read(self) -> dict[str, Any] | None:
        router = self.plane.router
        return None if router is None else await router.stats()

    def since(self, seconds: float) -> dict[str, Any] | None:
        """The newest sample at least ``seconds`` old, else the oldest (None: none yet)."""
        cutoff = time.monotonic() - seconds
        chosen = None
        for when, stats in self.samples:
            if when <= cutoff:
                chosen = stats
            else:
                break
        if chosen is None and self.samples:
            chosen = self.samples[0][1]
        return chosen

    async def stats(self, record: EndpointRecord, window: float) -> dict[str, Any]:
        now = await self._read()
        if now is None:
            raise ServerUnavailableError("the router does not answer for its counters right now")
        return compare(record, self.since(window), now, window)

    # -- promotion ----------------------------------------------------------------------
    async def promote(self, name: str, given: dict[str, Any]) -> None:
        record = await asyncio.to_thread(self.store.get, name)
        running = self.promotions.get(name)
        if running is not None and running.active:
            raise ConflictError(
                f"endpoint {name!r} is already promoting version {running.settings.version!r}",
                hint=f"cancel it first: modelport endpoint promote --cancel -n {name}",
            )
        settings = PromotionSettings.from_document(given)
        control = _check_promotion(record, settings)
        promotion = Promotion(self, record.name, control, settings)
        self.promotions[name] = promotion
        await asyncio.to_thread(
            self.store.update, name, {"promotion": {**given, "control": control}}
        )
        promotion.start()

    async def cancel(self, name: str) -> None:
        promotion = self.promotions.get(name)
        if promotion is None or not promotion.active:
            raise ConflictError(f"endpoint {name!r} has no promotion in progress")
        await promotion.cancel()

    def promotion_view(self, name: str) -> dict[str, Any] | None:
        promotion = self.promotions.get(name)
        return None if promotion is None else promotion.view()

    async def _interrupted(self, record: EndpointRecord) -> None:
        given = record.spec["promotion"]
        version = str(given.get("version"))
        message = (
            f"the promotion of {version!r} was interrupted by a control-plane restart: its "
            "traffic goes back to the control"
        )
        with contextlib.suppress(ModelportError):  # a version deleted meanwhile
            await asyncio.to_thread(self.store.update_version, record.name, version, None, 0)
        await asyncio.to_thread(self.store.update, record.name, {"promotion": None})
        await asyncio.to_thread(self.store.record_event, record.name, "rolledBack", message, {})
        self.records[record.name] = await asyncio.to_thread(self.store.get, record.name)


def _check_promotion(record: EndpointRecord, settings: PromotionSettings) -> str:
    """The control the treatment is judged against; the steps must fit v1's rules."""
    versions = list(record.versions)
    treatment = rules.find(versions, settings.version)
    control = next((v for v in versions if v.is_control), None)
    if control is None or control.name == treatment.name:
        raise InvalidInputError(
            f"version {treatment.name!r} is the control: promote a treatment instead"
        )
    if not control.is_default:
        raise InvalidInputError(
            f"a promotion moves traffic from the default; the control {control.name!r} is "
            "not the default",
            hint=f"make {control.name!r} the default first (update_version is_default=True)",
        )
    if treatment.shadow_percentile:
        raise InvalidInputError(
            f"version {treatment.name!r} is a shadow: set its shadow_percentile to 0 first"
        )
    if sorted(settings.steps) != list(settings.steps):
        raise InvalidInputError(f"the steps must rise: got {list(settings.steps)}")
    for step in settings.steps:
        rules.update(versions, treatment.name, traffic_percentile=step)  # raises, with values
    return control.name


def compare(
    record: EndpointRecord, old: dict[str, Any] | None, new: dict[str, Any], window: float
) -> dict[str, Any]:
    """Each version's summary over the window, and each shadow's comparison."""
    bounds = new.get("latencyBounds") or []
    old_routes = (old or {}).get("services", {})
    old_shadows = (old or {}).get("endpoints", {}).get(record.name, {}).get("shadows", {})
    new_shadows = new.get("endpoints", {}).get(record.name, {}).get("shadows", {})
    versions = {}
    for version in record.versions:
        route = record.service(version.name)
        current = new.get("services", {}).get(route)
        row: dict[str, Any] = {
            "versionType": version.version_type,
            "isDefault": version.is_default,
            "trafficPercentile": version.traffic_percentile,
            "shadowPercentile": version.shadow_percentile,
        }
        if current is not None:
            gained = comparison.route_window(old_routes.get(route), current)
            row.update(comparison.summary(gained, bounds))
        if version.name in new_shadows:
            row["shadow"] = comparison.shadow_window(
                old_shadows.get(version.name), new_shadows[version.name]
            )
        versions[version.name] = row
    return {"name": record.name, "windowSeconds": window, "versions": versions}


def _captured_as_version(route: dict[str, Any], endpoint: str, service: str) -> None:
    """A version's captured traffic lies with its endpoint's, under the version's name."""
    capture = route.get("capture")
    parts = rules.split_name(service)
    if capture is None or parts is None or "dir" not in capture:
        return  # (endpoints run on this machine: a capture entry here has its folder)
    folder = Path(capture["dir"]).parent / endpoint
    route["capture"] = {**capture, "dir": str(folder), "service": endpoint, "version": parts[1]}
