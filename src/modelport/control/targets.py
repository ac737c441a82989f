"""Compute targets as the control plane opens them: this machine, and attached clusters."""

from __future__ import annotations

import os
from pathlib import Path

from modelport.compute.local import limits
from modelport.compute.target import ComputeTarget, load_target
from modelport.control.workspace import ServerWorkspace
from modelport.home import workspace_key
from modelport.spec.compute import ROUTER_REPLICAS
from modelport.spec.support import Target
from modelport.store.computes import ComputeTargetRecord
from modelport.tracing import why_not_exported

# The image a cluster's replicas and routers run (see the README for what it holds).
RUNTIME_IMAGE_VARIABLE = "MODELPORT_RUNTIME_IMAGE"


def local_target(home: Path) -> Target:
    """The local target; tries a cgroup once to know whether CPU and memory are enforced."""
    return Target("local", limits.check(f"{workspace_key(home)}/probe"), traces=why_not_exported())


def cluster_target(
    attached: ComputeTargetRecord, ws: ServerWorkspace, api_url: str, api_ca: str | None = None
) -> ComputeTarget:
    """An attached Kubernetes cluster (blocking: reads its credentials' files).
    ``api_ca``: the PEM of the CA its pods trust for ``api_url`` (a private one)."""
    return load_target(
        "kubernetes",
        name=attached.name,
        kubeconfig=attached.kubeconfig,
        context=attached.context,
        namespace=attached.namespace,
        workspace=workspace_key(ws.home),
        stage_url=api_url,
        home=ws.home,
        snapshots=ws.snapshots,
        image=os.environ.get(RUNTIME_IMAGE_VARIABLE),
        router_replicas=ROUTER_REPLICAS.get(attached.cluster_purpose, 1),
        stage_ca=api_ca,
    )
