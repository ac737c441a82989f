"""Management API: compute targets (v1's ``ComputeTarget``): attach, list, show, detach.

Attaching checks the cluster first (:mod:`modelport.compute.kubernetes.attach`); only a
cluster that answers and whose credentials may do what modelport does is stored. No
answer carries a kubeconfig or the credentials in it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from modelport.compute.kubernetes.attach import Inspect, inspect_cluster
from modelport.compute.target import ClusterTarget
from modelport.control.plane import plane_of
from modelport.control.workspace import workspace_of
from modelport.errors import ComputeTargetNotFoundError, InvalidInputError
from modelport.spec.compute import (
    AKS,
    check_cluster_purpose,
    check_compute_name,
    check_namespace,
)
from modelport.store.computes import Attachment, already_attached

router = APIRouter(prefix="/api/v1")
MAX_KUBECONFIG = 1 << 20  # characters; a kubeconfig with certificates is a few KiB


def cluster_inspector() -> Inspect:
    """How attach checks a cluster (tests swap in one over a mock transport)."""
    return inspect_cluster


class Attach(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    compute_type: str = Field(AKS, alias="computeType")
    kubeconfig: str = Field(max_length=MAX_KUBECONFIG)
    context: str | None = Field(None, max_length=255)
    namespace: str | None = None
    cluster_purpose: str | None = Field(None, alias="clusterPurpose")


@router.put("/computes/{name}", status_code=201)
async def attach(
    name: str,
    body: Attach,
    request: Request,
    inspect: Annotated[Inspect, Depends(cluster_inspector)],
) -> dict[str, Any]:
    ws = workspace_of(request)
    check_compute_name(name)
    purpose = check_cluster_purpose(body.cluster_purpose)
    if body.compute_type.upper() != AKS:
        raise InvalidInputError(f"computeType {body.compute_type!r}: only {AKS} can be attached")
    if body.namespace is not None:
        check_namespace(body.namespace)
    if await run_in_threadpool(ws.computes.find, name) is not None:
        raise already_attached(name)  # before asking the cluster anything
    cluster = await inspect(body.kubeconfig, body.context, body.namespace)
    target = Attachment(
        kind=AKS,
        cluster_purpose=purpose,
        namespace=cluster.namespace,
        context=cluster.context,
        server=cluster.server,
        server_version=cluster.version,
        kubeconfig=cluster.kubeconfig,
    )
    record = await run_in_threadpool(ws.computes.attach, name, target)
    plane = request.app.state.plane
    if plane is not None:  # a server that runs services deploys there from now on
        await plane.open_cluster(record)
    return record.to_dict()


@router.get("/computes")
def list_computes(request: Request) -> dict[str, Any]:
    return {"value": [r.to_dict() for r in workspace_of(request).computes.list()]}


@router.get("/computes/{name}")
def get_compute(name: str, request: Request) -> dict[str, Any]:
    return workspace_of(request).computes.get(name).to_dict()


@router.delete("/computes/{name}")
async def detach(name: str, request: Request) -> dict[str, Any]:
    record = await run_in_threadpool(workspace_of(request).computes.detach, name)
    plane = request.app.state.plane
    if plane is not None:
        await plane.close_cluster(name)
    return record.to_dict()


def _cluster(request: Request, name: str) -> ClusterTarget:
    target = plane_of(request).targets.get(name)
    if not isinstance(target, ClusterTarget):
        raise ComputeTargetNotFoundError(f"compute target {name!r} is not attached")
    return target


@router.get("/computes/{name}/manifests")
async def manifests(name: str, request: Request, tls: str | None = None) -> dict[str, Any]:
    """What install applies, for ``kubectl apply -f`` (it holds the router's token)."""
    await run_in_threadpool(workspace_of(request).computes.get, name)
    return {"name": name, "manifests": await _cluster(request, name).manifests(tls)}


@router.post("/computes/{name}/install")
async def install(name: str, request: Request, tls: str | None = None) -> dict[str, Any]:
    """The cluster side: namespace, roles, the router's identity, Deployment and Service.
    Safe to run again.  ``tls``: the name of a Secret with ``tls.crt``/``tls.key``
    (the routers serve HTTPS), ``off`` (plain HTTP), absent: as installed."""
    await run_in_threadpool(workspace_of(request).computes.get, name)
    target = _cluster(request, name)
    applied = await target.install(tls)
    return {"name": name, "applied": applied, "routerUri": target.router_uri()}
