"""What attaching a cluster checks: its API server answers, and its credentials may do in
the namespace what the control plane does there (one access review per verb of
:data:`~modelport.compute.kubernetes.permissions.CONTROL_PLANE`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import yaml

from modelport.compute.kubernetes.api import KubeAPI, Missing
from modelport.compute.kubernetes.permissions import CONTROL_PLANE, Permission
from modelport.errors import ComputeTargetError


@dataclass(frozen=True)
class Cluster:
    """A cluster that passed: the context and namespace in effect, and what to store."""

    context: str
    namespace: str
    server: str
    version: str
    kubeconfig: str = field(repr=False)  # cut down to the context


Inspect = Callable[[str, str | None, str | None], Awaitable[Cluster]]


async def inspect_cluster(
    kubeconfig: str,
    context: str | None,
    namespace: str | None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> Cluster:
    """The cluster, checked; a ComputeTargetError naming every missing permission, or
    what else is wrong, otherwise."""
    async with KubeAPI(kubeconfig, context, namespace, transport=transport) as api:
        version = await api.version()
        missing = await api.can_i(CONTROL_PLANE)
        if missing:
            raise ComputeTargetError(
                describe_missing(missing, api.namespace),
                hint="grant them with a Role and RoleBinding in that namespace",
            )
        return Cluster(
            api.context, api.namespace, api.server, version, minify(kubeconfig, api.context)
        )


def describe_missing(missing: list[Missing], namespace: str) -> str:
    """``the credentials may not: get, list pods (core); patch deployments/scale (apps)
    in namespace 'ml'`` (the verbs of one rule together, in table order)."""
    verbs: dict[Permission, list[str]] = {}
    for permission, verb in missing:
        verbs.setdefault(permission, []).append(verb)
    rules = "; ".join(p.describe(", ".join(v)) for p, v in verbs.items())
    return f"the credentials may not: {rules} in namespace {namespace!r}"


def minify(kubeconfig: str, context: str) -> str:
    """The kubeconfig with only ``context``, its cluster and its user (``kubectl config
    view --minify``): a stored kubeconfig holds no other cluster's credentials."""
    document = yaml.safe_load(kubeconfig)
    entry = _named(document["contexts"], context)
    user = entry["context"].get("user")
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "contexts": [entry],
            "clusters": [_named(document["clusters"], entry["context"]["cluster"])],
            "users": [_named(document["users"], user)] if user else [],
        },
        sort_keys=False,
    )


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The entry of that name that the client used: the last (lightkube keeps the last)."""
    return [e for e in entries if e["name"] == name][-1]
