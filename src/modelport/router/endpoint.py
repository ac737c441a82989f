"""An endpoint as the router holds it, and which version takes a request: pure, no I/O.

A version the client pins (the ``azureml-model-deployment`` header) wins; else a
sticky key (a header or a cookie the endpoint names) keeps its client on one version
through the bucket table; else the split deals the request.  Shadow versions take no
live traffic: they get copies of some of it (``shadow.py``).  Across route table
updates an endpoint keeps its split's place while the shares hold, its bucket table,
from which new shares are dealt so that only the keys that must move do, and its
shadows' counters and copies in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelport.router.shadow import (
    MAX_IN_FLIGHT,
    TOLERANCE,
    InFlight,
    Shadow,
    ShadowCounters,
    per_million,
)
from modelport.router.split import Split, buckets, sticky


@dataclass(eq=False)
class Endpoint:
    """Versions behind one name: each a route of its own (its replicas, lane, caps and
    timeouts), chosen by the split unless the client pins one or has a sticky key."""

    name: str
    routes: dict[str, str]  # version -> the name of its route
    weights: tuple[tuple[str, int], ...]
    split: Split
    buckets: Sequence[str]  # each sticky bucket's version (see split.buckets)
    sticky_header: bytes | None = None  # lower-cased, as request headers arrive
    sticky_cookie: bytes | None = None
    shadows: tuple[Shadow, ...] = ()
    tolerance: float = TOLERANCE  # how far a shadow's numbers may be from the live ones
    max_in_flight: int = MAX_IN_FLIGHT  # copies to shadows not yet answered
    in_flight: InFlight = field(default_factory=InFlight)
    plain: bool = True  # no sticky key, no shadows: the proxy's cheapest path


def pick(endpoint: Endpoint, headers: list[tuple[bytes, bytes]]) -> str:
    """The version for a request that pins none: its sticky key's, else the split's."""
    key = sticky_key(endpoint, headers)
    return endpoint.split.pick() if key is None else sticky(key, endpoint.buckets)


def sticky_key(endpoint: Endpoint, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    name = endpoint.sticky_header
    if name is not None:
        return next((v for k, v in headers if k == name), None) or None
    name = endpoint.sticky_cookie
    if name is not None:
        for k, v in headers:
            if k == b"cookie" and name in v:  # most requests stop at the substring test
                found = cookie(v, name)
                if found:
                    return found
    return None


def cookie(header: bytes, name: bytes) -> bytes | None:
    """``name``'s value in a Cookie header (``a=1; b=2``), quotes removed."""
    for part in header.split(b";"):
        key, eq, value = part.partition(b"=")
        if eq and key.strip() == name:
            return value.strip().strip(b'"')
    return None


def build_endpoints(doc: dict[str, Any], previous: Mapping[str, Endpoint]) -> dict[str, Endpoint]:
    """Endpoints whose shares did not change keep their split's place in its cycle and
    their bucket table; new shares deal buckets from the last table."""
    endpoints = {}
    for name, entry in doc.get("endpoints", {}).items():
        versions = entry["versions"]
        weights = tuple((str(v["name"]), int(v["share"])) for v in versions)
        old = previous.get(name)
        if old is not None and old.weights == weights:
            split, table = old.split, old.buckets
        else:
            split, table = Split(weights), buckets(weights, old.buckets if old else None)
        header, cookie_name = _sticky(entry.get("sticky"))
        routes = {str(v["name"]): str(v["route"]) for v in versions}
        shadows = _shadows(entry.get("shadows", []), routes, old)
        endpoints[name] = Endpoint(
            name,
            routes=routes,
            weights=weights,
            split=split,
            buckets=table,
            sticky_header=header,
            sticky_cookie=cookie_name,
            shadows=shadows,
            tolerance=float(entry.get("tolerance", TOLERANCE)),
            max_in_flight=int(entry.get("maxMirroredInFlight", MAX_IN_FLIGHT)),
            in_flight=old.in_flight if old is not None else InFlight(),
            plain=header is None and cookie_name is None and not shadows,
        )
    return endpoints


def _shadows(
    entries: list[dict[str, Any]], live: dict[str, str], old: Endpoint | None
) -> tuple[Shadow, ...]:
    """``[{"name", "route", "percent"}]``; a shadow that stays keeps its counters."""
    kept = {s.version: s.counters for s in old.shadows} if old is not None else {}
    shadows: dict[str, Shadow] = {}
    for entry in entries:
        version = str(entry["name"])
        route = str(entry["route"])
        if version in live or version in shadows:
            raise ValueError(f"shadow version {version!r} is already a version of the endpoint")
        if route in live.values():  # its copies would take the live version's slots
            raise ValueError(f"shadow version {version!r} has a live version's route {route!r}")
        counters = kept.get(version) or ShadowCounters()
        shadows[version] = Shadow(version, route, per_million(entry["percent"]), counters)
    return tuple(shadows.values())


def _sticky(entry: Any) -> tuple[bytes | None, bytes | None]:
    """``{"header": name}`` or ``{"cookie": name}``: (header, cookie), one of them None."""
    if entry is None:
        return None, None
    if not isinstance(entry, dict) or len(entry) != 1 or not entry.keys() <= {"header", "cookie"}:
        raise ValueError(f'sticky takes {{"header": name}} or {{"cookie": name}}, not {entry!r}')
    if "header" in entry:
        return str(entry["header"]).lower().encode("latin-1"), None
    return None, str(entry["cookie"]).encode("latin-1")
