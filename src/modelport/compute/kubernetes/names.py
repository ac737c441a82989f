"""Names and labels of what modelport creates in a cluster: pure, no I/O.

A service's ConfigMap is named after the service (a v1 name: 3 to 32 characters,
a valid DNS-1035 label); a generation's objects are ``<service>-<generation>``.
Kubernetes caps these names at 63 characters: a longer one keeps its first part and
ends in a hash of the whole, so the same input always gives the same name and two
inputs never share one.
"""

from __future__ import annotations

import hashlib

MAX_NAME = 63
HASH_CHARS = 10

MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
WORKSPACE = "modelport.io/workspace"
SERVICE = "modelport.io/service"
GENERATION = "modelport.io/generation"
ENVIRONMENT = "modelport.io/environment"  # annotation: the environment's content hash
MODELPORT = "modelport"

ROUTER = "modelport-router"
CONTROL_PLANE = "modelport-control-plane"
# The routers' token verification keys: a ConfigMap no service can be named (services
# have at most 32 characters, an endpoint version's name a dot).
TOKENS = "modelport-workspace-token-verification-keys"


def dns_label(name: str) -> str:
    """``name`` if it fits in 63 characters, else its head and a hash of the whole."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_CHARS]
    head = name[: MAX_NAME - HASH_CHARS - 1].rstrip("-.")
    return f"{head}-{digest}"


def generation_name(service: str, generation: int) -> str:
    """The Deployment, headless Service and PDB of one service generation."""
    return dns_label(f"{service}-{generation}")


def staging_secret_name(service: str, generation: int) -> str:
    """The Secret holding one generation's staging credential."""
    return dns_label(f"{service}-{generation}-stage")


def workspace_labels(workspace: str) -> dict[str, str]:
    return {MANAGED_BY: MODELPORT, WORKSPACE: workspace}


def service_labels(workspace: str, service: str) -> dict[str, str]:
    return {**workspace_labels(workspace), SERVICE: service}


def generation_labels(workspace: str, service: str, generation: int) -> dict[str, str]:
    return {**service_labels(workspace, service), GENERATION: str(generation)}


def generation_selector(service: str, generation: int) -> dict[str, str]:
    """What a generation's Deployment, Service and PDB select its pods by."""
    return {SERVICE: service, GENERATION: str(generation)}


def router_labels(workspace: str) -> dict[str, str]:
    return {**workspace_labels(workspace), COMPONENT: "router"}


def router_selector(workspace: str) -> dict[str, str]:
    return {WORKSPACE: workspace, COMPONENT: "router"}
