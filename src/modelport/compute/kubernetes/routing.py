"""A router pod's table from what the cluster says: pure decisions, no I/O.

The control plane writes each service's route policy into the service's ConfigMap
(auth, key digests, caps, timeouts, and which generation takes traffic); the
EndpointSlices of that generation's headless Service say which replicas are ready.
The route-sync container (``compute/kubernetes/routes.py``) feeds both in here and
pushes the result to the router beside it.  So the router learns its replicas from
the Kubernetes API, and a pod that is no longer ready leaves the table as soon as
the EndpointSlice controller says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

POLICY_KEY = "route.json"
TOKENS_KEY = "tokens.json"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Endpoints:
    """One EndpointSlice, reduced to what routing needs."""

    service: str  # the Kubernetes Service it belongs to
    port: int | None
    ready: tuple[str, ...]  # addresses of ready endpoints


def policy_of(configmap: Mapping[str, Any]) -> dict[str, Any] | None:
    """The route policy a service's ConfigMap carries, or None if it has none (yet)."""
    data = configmap.get("data") or {}
    text = data.get(POLICY_KEY)
    if not text:
        return None
    try:
        policy = json.loads(text)
    except ValueError:
        return None
    return policy if isinstance(policy, dict) else None


def tokens_of(configmap: Mapping[str, Any]) -> dict[str, Any] | None:
    """The token verification keys (issuer, public JWKs) the tokens ConfigMap carries."""
    text = (configmap.get("data") or {}).get(TOKENS_KEY)
    if not text:
        return None
    try:
        tokens = json.loads(text)
    except ValueError:
        return None
    return tokens if isinstance(tokens, dict) else None


def endpoints_of(slice_: Mapping[str, Any]) -> Endpoints | None:
    """An EndpointSlice (v1 or v1beta1: the fields used here are the same)."""
    labels = (slice_.get("metadata") or {}).get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL)
    if not service:
        return None
    ports = slice_.get("ports") or []
    port = ports[0].get("port") if ports else None
    ready: list[str] = []
    for endpoint in slice_.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        # An absent `ready` means ready (the API's own rule); terminating ones are not.
        if conditions.get("ready", True) is not False and not conditions.get("terminating"):
            ready.extend(endpoint.get("addresses") or [])
    return Endpoints(service, port, tuple(sorted(ready)))


def services_table(
    policies: Mapping[str, Mapping[str, Any]], slices: Iterable[Endpoints]
) -> dict[str, Any]:
    """The router's ``services`` document: each service with its ready replicas."""
    by_service: dict[str, list[tuple[str, int]]] = {}
    for found in slices:
        if found.port is None:
            continue
        by_service.setdefault(found.service, []).extend((a, found.port) for a in found.ready)
    services = {}
    for name, policy in policies.items():
        backend = policy.get("backend")
        replicas = sorted(set(by_service.get(backend, []))) if backend else []
        route = {k: v for k, v in policy.items() if k != "generation"}
        route["replicas"] = [[host, port] for host, port in replicas]
        route["starting"] = bool(policy.get("starting")) and not replicas
        services[name] = route
    return services


def routers(slices: Iterable[Endpoints], service: str, mine: str) -> list[str]:
    """The router pods' addresses in a fixed order, this one among them (ready or not:
    it must know its place to take its share)."""
    ready = {a for found in slices if found.service == service for a in found.ready}
    return sorted(ready | {mine})
