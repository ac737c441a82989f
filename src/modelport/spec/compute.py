"""Compute targets as v1 names them: target names, cluster purposes. Pure, no I/O."""

from __future__ import annotations

from urllib.parse import urlsplit

from modelport.errors import InvalidInputError
from modelport.spec.names import NAMESPACE_RE, NameRule

LOCAL = "local"  # the built-in target: processes on the server's machine
AKS = "AKS"  # v1's compute type of an attached Kubernetes cluster
FAST_PROD, DEV_TEST = "FastProd", "DevTest"  # v1's AksCompute.ClusterPurpose
CLUSTER_PURPOSES = (FAST_PROD, DEV_TEST)
# As v1's front end: one router on a DevTest cluster, three (one per node) on FastProd.
ROUTER_REPLICAS = {FAST_PROD: 3, DEV_TEST: 1}
SUCCEEDED = "Succeeded"  # v1's provisioning state of a usable target

COMPUTE_NAME_RE = NameRule(r"[a-zA-Z][a-zA-Z0-9-]{1,15}")


def check_compute_name(name: str) -> str:
    if name == LOCAL:
        raise InvalidInputError(f"{LOCAL!r} names the local compute target; choose another name")
    if not COMPUTE_NAME_RE.match(name):
        raise InvalidInputError(
            f"invalid compute target name {name!r}: it must be 2 to 16 characters long, start "
            "with a letter, and contain only letters, digits and '-'"
        )
    return name


def check_cluster_purpose(purpose: str | None) -> str:
    """v1's ``cluster_purpose`` (any case; default FastProd), spelled as v1 spells it."""
    if purpose is None:
        return FAST_PROD
    found = next((p for p in CLUSTER_PURPOSES if p.lower() == purpose.lower()), None)
    if found is None:
        raise InvalidInputError(
            f"invalid cluster_purpose {purpose!r}: it must be {FAST_PROD} or {DEV_TEST}"
        )
    return found


def check_namespace(namespace: str) -> str:
    if not NAMESPACE_RE.match(namespace):
        raise InvalidInputError(
            f"invalid Kubernetes namespace {namespace!r}: at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return namespace


def server_address(url: str) -> str:
    """``host:port`` of an API server's URL: what answers show of it (no path, no user)."""
    parts = urlsplit(url)
    host = parts.hostname or url
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host
