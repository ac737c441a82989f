"""Management API: source snapshots and the service lifecycle."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from modelport.compute import plan
from modelport.compute.layout import request_log_dir, service_dir
from modelport.control import logfiles
from modelport.control.plane import ControlPlane, plane_of
from modelport.control.workspace import ServerWorkspace, workspace_of
from modelport.envs.builder import build_problems
from modelport.errors import (
    ConfigError,
    ConflictError,
    EnvironmentBuildError,
    InvalidInputError,
    NotFoundError,
    StorageUnavailableError,
)
from modelport.spec import support
from modelport.spec.compute import LOCAL
from modelport.spec.deployment import ENDPOINT, AksServiceDeploymentConfiguration
from modelport.spec.endpoint import split_name
from modelport.spec.inference import batch_size, check_entry_script_source, convert_legacy
from modelport.spec.model import ModelFile
from modelport.spec.names import check_service_name, parse_model_id
from modelport.store.services import ServiceRecord, new_key

router = APIRouter(prefix="/api/v1")
KEY_TYPES = ("Primary", "Secondary")


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    basename: str
    files: list[ModelFile]


@router.post("/snapshots", status_code=201)
def create_snapshot(body: SnapshotIn, request: Request) -> dict[str, Any]:
    return {"id": workspace_of(request).snapshots.put(body.basename, body.files)}


class Deploy(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    models: list[str]
    inference_config: dict[str, Any] = Field(alias="inferenceConfig")
    snapshot: str
    deployment_config: dict[str, Any] = Field(alias="deploymentConfig")
    compute_target: str | None = Field(None, alias="computeTarget")
    overwrite: bool = False
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: str | None = None


class Update(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    models: list[str] | None = None
    inference_config: dict[str, Any] | None = Field(None, alias="inferenceConfig")
    snapshot: str | None = None
    deployment_config: dict[str, Any] | None = Field(None, alias="deploymentConfig")
    # Metadata: as v1's update, tags replace the dict and properties are only added.
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: str | None = None


METADATA = ("tags", "properties", "description")


def _checked_spec(ws: ServerWorkspace, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Refuse at deploy what could only fail later: models, configs, the entry script,
    an environment that cannot build here."""
    if not spec["models"]:
        raise InvalidInputError("deploy needs at least one model")
    spec["models"] = [ws.models.get(*parse_model_id(m)).id for m in spec["models"]]
    inference = plan.inference_config(spec)
    config = plan.deployment_config(spec)
    refused = support.refusals(config)
    if refused:
        raise ConfigError("\n".join(refused))
    if isinstance(config, AksServiceDeploymentConfiguration) and config.compute_target_name:
        cluster = _cluster_name(ws, config.compute_target_name, named_in_config=True)
        if cluster is not None and not spec.get("computeTarget"):
            spec["computeTarget"] = cluster
    if spec.get("computeTarget"):
        _check_cluster_config(spec["computeTarget"], spec)
    _, files = ws.snapshots.get(spec["snapshot"])
    script = inference.entry_script
    source = _source_text(ws, files, script, "entry script")
    check_entry_script_source(source, script)
    spec["batchSize"] = batch_size(source, script)  # the router's slots per replica
    if inference.is_legacy:  # as v1's Model.deploy: the conda file becomes <service>-env
        inference = convert_legacy(
            inference,
            name,
            _source_text(ws, files, inference.conda_file, "conda_file")
            if inference.conda_file
            else None,
            _source_text(ws, files, inference.extra_docker_file_steps, "extra_docker_file_steps")
            if inference.extra_docker_file_steps
            else None,
        )
        spec["inferenceConfig"] = inference.to_document()
    env = plan.environment(spec)
    problems = build_problems(env) if env is not None else []
    if env is not None and problems:
        raise EnvironmentBuildError(
            f"environment {env.name!r} will not build here:\n" + "\n".join(problems)
        )
    spec["deploymentConfig"] = config.model_copy(
        update={"primary_key": None, "secondary_key": None}
    ).to_document()
    return spec


def _cluster_name(
    ws: ServerWorkspace, name: str | None, named_in_config: bool = False
) -> str | None:
    """The attached cluster a deploy names, or None for this machine; an unknown name is
    an error (``computeTargetName`` naming no attached cluster stays a warning, see
    :func:`support.warnings`)."""
    if name in (None, LOCAL):
        return None
    if ws.computes.find(name) is not None:
        return name
    if named_in_config:
        return None
    raise InvalidInputError(
        f"compute target {name!r} is not attached; attach it with modelport compute attach",
        hint=f"or deploy to the {LOCAL!r} compute target",
    )


def _check_cluster_config(name: str, spec: dict[str, Any]) -> None:
    """A cluster runs AKS deployment configurations only, as v1's AksCompute does."""
    the_plan = plan.plan(spec)
    if the_plan.compute_type != "AKS":
        raise InvalidInputError(
            f"a {the_plan.compute_type} deployment configuration cannot be deployed to the "
            f"Kubernetes compute target {name!r}",
            hint="use AksWebservice.deploy_configuration() or computeType AKS",
        )


def _check_target(plane: ControlPlane, name: str, spec: dict[str, Any]) -> None:
    """What the compute target refuses at once (e.g. a local port another program holds)."""
    controller = plane.controllers.get(name)
    current = controller.current if controller is not None else None
    target = plane.target_for(spec)
    refused = support.tls_refusal(plan.deployment_config(spec), plane.serves_tls(target))
    if refused:
        raise ConfigError(refused)
    target.check_deploy(plan.plan(spec), current.replicas if current else None)


def _source_text(ws: ServerWorkspace, files: list[ModelFile], path: str, what: str = "file") -> str:
    """A file of the uploaded source directory, as text."""
    entry = next((f for f in files if f.path == path), None)
    if entry is None:
        raise InvalidInputError(f"{what} {path!r} is not in the source directory")
    if not ws.blobs.exists(entry.sha256):
        raise StorageUnavailableError(
            f"the content of {what} {path!r} is missing from the artifact store "
            f"({ws.blobs.path(entry.sha256)})",
            hint="deploy the source directory again",
        )
    return ws.blobs.path(entry.sha256).read_bytes().decode("utf-8", errors="replace")


def _plain(name: str) -> str:
    """A service's name; an endpoint's version is reached through its endpoint."""
    parts = split_name(name)
    if parts is not None:
        raise NotFoundError(
            f"Webservice with name {name} not found in provided workspace",
            hint=f"version {parts[1]!r} of endpoint {parts[0]!r} is under /api/v1/endpoints",
        )
    return name


def _not_an_endpoint(config: dict[str, Any] | None) -> None:
    if config and str(config.get("computeType", "")).lower() == ENDPOINT:
        raise InvalidInputError(
            "a computeType AKSENDPOINT configuration deploys an endpoint, not a service",
            hint="POST it to /api/v1/endpoints (Model.deploy and modelport model deploy do)",
        )


def _keys(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    keys = doc.get("keys") or {}
    return keys.get("primaryKey"), keys.get("secondaryKey")


def _scoring_uri(name: str, the_plan: plan.DeploymentPlan, plane: ControlPlane) -> str:
    """v1's: through the router, or for a local service its own port on localhost."""
    if the_plan.compute_type != "Local":
        return plane.scoring_uri(name)
    controller = plane.controllers.get(name)
    port = the_plan.fixed_port
    if port is None and controller is not None and controller.current is not None:
        port = next((r.port for r in controller.current.replicas.replicas() if r.index == 0), None)
    return f"http://localhost:{port}/score" if port is not None else plane.scoring_uri(name)


def view(record: ServiceRecord, plane: ControlPlane) -> dict[str, Any]:
    controller = plane.controllers.get(record.name)
    config = plan.deployment_config(record.spec)
    env = plan.environment(record.spec)
    the_plan = plan.plan(record.spec)
    scoring = _scoring_uri(record.name, the_plan, plane)
    return {
        "name": record.name,
        "state": record.state,
        "error": record.error,
        "computeType": the_plan.compute_type,
        "computeTarget": record.spec.get("computeTarget") or LOCAL,
        "description": record.spec.get("description"),
        "tags": record.spec.get("tags") or {},
        "properties": record.spec.get("properties") or {},
        "routerUri": plane.scoring_uri(record.name),
        "warnings": support.warnings(
            config, plan.inference_config(record.spec), plane.target_for(record.spec).capabilities
        ),
        "generation": record.generation,
        "scoringUri": scoring,
        "swaggerUri": scoring.rsplit("/", 1)[0] + "/swagger.json",
        "authEnabled": the_plan.auth and not the_plan.token_auth,  # v1's: key auth
        "tokenAuthEnabled": the_plan.token_auth,
        "models": record.spec["models"],
        "deploymentConfig": config.resolved().to_document(),  # in effect, defaults filled in
        "specifiedDeploymentConfig": config.to_document(),  # as given; updates merge into it
        "inferenceConfig": {
            k: v for k, v in record.spec["inferenceConfig"].items() if k != "environment"
        },
        "environment": None
        if env is None
        else {
            "name": env.name,
            "version": env.version,
            "contentHash": env.content_hash(),
        },
        "replicas": controller.replica_views() if controller else [],
        "deploymentStatus": {
            "generation": record.generation,
            "applied": controller.applied if controller else 0,
            "messages": list(controller.messages) if controller else [],
            "progress": controller.progress() if controller else None,
        },
        "createdTime": record.created_time.isoformat(),
        "updatedTime": record.updated_time.isoformat(),
    }


@router.post("/services", status_code=202)
def deploy(body: Deploy, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    check_service_name(body.name)
    _not_an_endpoint(body.deployment_config)
    cluster = _cluster_name(ws, body.compute_target)
    keys = _keys(body.deployment_config)
    given = body.model_dump(
        by_alias=True, exclude={"name", "overwrite", "compute_target"}, exclude_none=True
    )
    if cluster is not None:
        given["computeTarget"] = cluster
    spec = _checked_spec(ws, body.name, given)
    _check_target(plane, body.name, spec)
    record = ws.services.create(body.name, spec, keys, body.overwrite)
    plane.notify(body.name)
    return view(record, plane)


@router.get("/services")
def list_services(request: Request) -> dict[str, Any]:
    plane = plane_of(request)
    records = workspace_of(request).services.list()
    return {"value": [view(r, plane) for r in records if split_name(r.name) is None]}


@router.get("/services/{name}")
def get_service(name: str, request: Request) -> dict[str, Any]:
    return view(workspace_of(request).services.get(_plain(name)), plane_of(request))


@router.patch("/services/{name}", status_code=202)
def update_service(name: str, body: Update, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    changes = body.model_dump(by_alias=True, exclude_none=True)
    if not changes:
        raise InvalidInputError("No parameters provided to update.")
    _not_an_endpoint(body.deployment_config)
    current = ws.services.get(_plain(name))
    metadata = _metadata(current.spec, {k: changes.pop(k) for k in METADATA if k in changes})
    if not changes:  # tags, properties, description: no roll-out
        return view(ws.services.update_metadata(name, metadata), plane)
    spec = _checked_spec(ws, name, {**current.spec, **changes, **metadata})
    _check_target(plane, name, spec)
    keys = _keys(changes.get("deploymentConfig", {}))
    for which, value in zip(("primary", "secondary"), keys, strict=True):
        if value:
            ws.services.set_key(name, which, value)
    # Only what this call changes: the store merges it under the row's lock, so two
    # updates of different settings at once both count.
    changed = {k: spec[k] for k in (*changes, *metadata, "batchSize") if k in spec}
    record = ws.services.update_spec(name, changed)
    plane.notify(name)
    return view(record, plane)


def _metadata(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """v1's rules: tags are replaced, properties only added (a key never changes)."""
    out = dict(changes)
    if "properties" in changes:
        current = spec.get("properties") or {}
        clash = [k for k, v in changes["properties"].items() if k in current and current[k] != v]
        if clash:
            raise ConflictError(f"properties cannot be changed once set: {', '.join(clash)}")
        out["properties"] = {**current, **changes["properties"]}
    return out


@router.delete("/services/{name}", status_code=202)
def delete_service(name: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    record = ws.services.mark_deleting(_plain(name))
    plane.notify(name)
    return {"name": record.name, "state": record.state}


@router.get("/services/{name}/logs", response_model=None)
async def service_logs(
    name: str,
    request: Request,
    num_lines: Annotated[int, Query(ge=1, le=1_000_000)] = 5000,
    follow: bool = False,
    replica: Annotated[int | None, Query(ge=0)] = None,
    since: str | None = None,
    tail: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> dict[str, Any] | StreamingResponse:
    """Without options, v1's answer (each replica's last lines under its name); with
    ``follow``, ``replica``, ``since`` or ``tail``, the replicas' lines merged, each
    after ``[replica-<n>]``, and with ``follow`` streamed on as they are written."""
    ws = workspace_of(request)
    record = await asyncio.to_thread(ws.services.get, _plain(name))
    if not (follow or replica is not None or since or tail):
        return {"name": name, "logs": await plane_of(request).logs(name, num_lines)}
    cutoff = logfiles.since_cutoff(since)  # a bad duration is a 400 before any streaming
    if record.spec.get("computeTarget") not in (None, "", LOCAL):
        return await _pod_logs(request, name, replica, tail or num_lines, cutoff, follow)
    query = logfiles.LogQuery(replica, since, tail or num_lines)
    folder = service_dir(ws.home, name) / "logs"
    if follow:
        stream = logfiles.follow_logs(folder, query, request.is_disconnected)
        return StreamingResponse(stream, media_type="text/plain")
    return {"name": name, "logs": await asyncio.to_thread(logfiles.merged_logs, folder, query)}


async def _pod_logs(
    request: Request,
    name: str,
    replica: int | None,
    tail: int,
    cutoff: float | None,
    follow: bool,
) -> dict[str, Any] | StreamingResponse:
    """A cluster's replicas: their pods' lines, each after the pod's name."""
    if replica is not None:
        raise InvalidInputError(
            "replica numbers name the replicas of this machine; on a cluster each line "
            "starts with its pod's name",
            hint=f"`modelport service logs -n {name} --tail N` shows every pod's lines",
        )
    since_s = None if cutoff is None else max(1, math.ceil(time.time() - cutoff))
    lines = plane_of(request).pod_logs(name, tail, since_s, follow, request.is_disconnected)
    if follow:
        return StreamingResponse(lines, media_type="text/plain")
    text = b"".join([line async for line in lines]).decode("utf-8", "replace")
    return {"name": name, "logs": text}


@router.get("/services/{name}/requests", response_model=None)
async def service_requests(
    name: str,
    request: Request,
    follow: bool = False,
    status: str | None = None,
    since: str | None = None,
    tail: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> dict[str, Any] | StreamingResponse:
    """The router's request log lines for the service (or endpoint) ``name``, oldest
    first; with ``follow``, JSON lines streamed on as requests are answered."""
    ws = workspace_of(request)
    await asyncio.to_thread(_service_or_endpoint, ws, name)
    query = logfiles.RequestQuery(name, status, since, tail)
    query.matcher()  # a bad status or duration is a 400 before any streaming starts
    folder = request_log_dir(ws.home)
    if follow:
        stream = logfiles.follow_requests(folder, query, request.is_disconnected)
        return StreamingResponse(stream, media_type="application/x-ndjson")
    tailer = logfiles.Tailer(folder, "requests-*.jsonl")
    try:
        found = await asyncio.to_thread(logfiles.request_lines, folder, query, tailer)
    finally:
        tailer.close()
    return {"name": name, "value": found}


def _service_or_endpoint(ws: ServerWorkspace, name: str) -> None:
    try:
        ws.services.get(_plain(name))
    except NotFoundError:
        ws.endpoints.get(name)


@router.get("/services/{name}/events")
def scaling_events(name: str, request: Request) -> dict[str, Any]:
    ws = workspace_of(request)
    ws.services.get(_plain(name))
    return {"name": name, "value": ws.events.list(name)}


@router.get("/services/{name}/counters")
async def service_counters(name: str, request: Request) -> dict[str, Any]:
    """The router's counters for one service or endpoint version (``shop.blue``) now:
    they only grow, so a reader takes rates from two reads (the dashboard's live view).
    With them the replicas (ready of desired) and the autoscaler's decisions."""
    ws, plane = workspace_of(request), plane_of(request)
    record = await asyncio.to_thread(ws.services.get, name)
    controller = plane.controllers.get(record.name)
    replicas = controller.replica_views() if controller else []
    return {
        "name": record.name,
        "state": record.state,
        "counters": await plane.service_stats(record.name),
        "replicas": {
            "ready": sum(r["state"] == "Ready" for r in replicas),
            "desired": len(replicas),
        },
        "events": (await asyncio.to_thread(ws.events.list, record.name))[-50:],
    }


@router.get("/services/{name}/keys")
def service_keys(name: str, request: Request) -> dict[str, Any]:
    record = workspace_of(request).services.get(_plain(name))
    if plan.plan(record.spec).token_auth:
        raise InvalidInputError(
            f"service {name!r} uses token authentication: it takes tokens, not keys",
            hint=f"get a token: service.get_access_token() or "
            f"modelport service get-access-token -n {name}",
        )
    return {"primaryKey": record.primary_key, "secondaryKey": record.secondary_key}


class Regenerate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    key_type: str = Field(alias="keyType")
    key_value: str | None = Field(None, alias="keyValue")

    def key(self) -> tuple[str, str]:
        """Which key (``primary``/``secondary``, v1's names in any case) and its new value."""
        which = next((k for k in KEY_TYPES if k.lower() == self.key_type.lower()), None)
        if which is None:
            raise InvalidInputError(
                f"Error, invalid value provided for key: {self.key_type}. "
                f"Valid options are: {', '.join(KEY_TYPES)}"
            )
        value = self.key_value or new_key()
        if len(value) < 8:
            raise InvalidInputError("a key must be at least 8 characters long")
        return which.lower(), value


@router.post("/services/{name}/regenerateKeys")
def regenerate_key(
    name: str, body: Annotated[Regenerate, Body()], request: Request
) -> dict[str, Any]:
    ws = workspace_of(request)
    record = ws.services.set_key(_plain(name), *body.key())
    plane_of(request).notify(name)
    return {"primaryKey": record.primary_key, "secondaryKey": record.secondary_key}
