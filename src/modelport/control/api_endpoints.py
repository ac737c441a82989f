"""Management API: endpoints, their versions, traffic, keys, statistics and promotion.

An endpoint's version is a service of its own (``<endpoint>.<version>``): it is checked,
rolled out, autoscaled and drained as any service is, while the endpoint holds the
name clients call, the keys, and v1's traffic rules between the versions.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from modelport.control.api_services import (
    Regenerate,
    _check_target,
    _checked_spec,
    _keys,
    _metadata,
    view,
)
from modelport.control.plane import ControlPlane, plane_of
from modelport.control.workspace import ServerWorkspace, workspace_of
from modelport.errors import ConfigError, InvalidInputError
from modelport.spec import endpoint as rules
from modelport.spec.compute import LOCAL
from modelport.spec.deployment import auth_update, deployment_config_from_document
from modelport.spec.endpoint import Version
from modelport.spec.names import check_service_name
from modelport.spec.support import APP_INSIGHTS_WARNING
from modelport.store.endpoints import EndpointRecord
from modelport.store.services import DELETING, FAILED, HEALTHY, TRANSITIONING

router = APIRouter(prefix="/api/v1")
COMPUTE_TYPE = "AKSENDPOINT"


class Sticky(BaseModel):
    """Which request value keeps a client on one version: a header or a cookie."""

    model_config = ConfigDict(extra="forbid")
    header: str | None = Field(None, min_length=1, max_length=128)
    cookie: str | None = Field(None, min_length=1, max_length=128)


class VersionIn(BaseModel):
    """A version's deployment (as a service's) and its traffic rules."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    version_name: str | None = Field(None, alias="versionName")
    models: list[str]
    inference_config: dict[str, Any] = Field(alias="inferenceConfig")
    snapshot: str
    deployment_config: dict[str, Any] = Field(default_factory=dict, alias="deploymentConfig")
    traffic_percentile: int | None = Field(None, alias="trafficPercentile")
    is_default: bool | None = Field(None, alias="isDefault")
    is_control_version_type: bool | None = Field(None, alias="isControlVersionType")
    shadow_percentile: int | None = Field(None, alias="shadowPercentile")
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: str | None = None


class EndpointIn(VersionIn):
    name: str
    compute_target: str | None = Field(None, alias="computeTarget")
    sticky: Sticky | None = None
    tolerance: float | None = Field(None, ge=0)
    endpoint_description: str | None = Field(None, alias="endpointDescription")
    endpoint_tags: dict[str, str] | None = Field(None, alias="endpointTags")
    endpoint_properties: dict[str, str] | None = Field(None, alias="endpointProperties")


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    models: list[str] | None = None
    inference_config: dict[str, Any] | None = Field(None, alias="inferenceConfig")
    snapshot: str | None = None
    deployment_config: dict[str, Any] | None = Field(None, alias="deploymentConfig")
    traffic_percentile: int | None = Field(None, alias="trafficPercentile")
    is_default: bool | None = Field(None, alias="isDefault")
    is_control_version_type: bool | None = Field(None, alias="isControlVersionType")
    shadow_percentile: int | None = Field(None, alias="shadowPercentile")
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: str | None = None


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    auth_enabled: bool | None = Field(None, alias="authEnabled")
    token_auth_enabled: bool | None = Field(None, alias="tokenAuthEnabled")
    enable_app_insights: bool | None = Field(None, alias="appInsightsEnabled")
    sticky: Sticky | None = None
    tolerance: float | None = Field(None, ge=0)
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: str | None = None


VERSION_METADATA = ("tags", "properties", "description")


# -- checks ---------------------------------------------------------------------------
def _version_spec(
    ws: ServerWorkspace, endpoint: str, version: str, body: dict[str, Any]
) -> tuple[dict[str, Any], int | None]:
    """A version's service spec, checked as a deploy is, and the percentage its
    AKSENDPOINT configuration gives (if any)."""
    config = deployment_config_from_document(body["deploymentConfig"], "deployment config")
    own, _, percentile = rules.version_config(config)
    given = {**body, "deploymentConfig": own.to_document()}
    spec = _checked_spec(ws, rules.service_name(endpoint, version), given)
    return spec, percentile


def _check_endpoint_owned(doc: dict[str, Any] | None, record: EndpointRecord) -> None:
    """Auth and keys are the endpoint's: a version's configuration that sets them otherwise
    is refused, not silently overruled."""
    if not doc:
        return
    given = deployment_config_from_document(doc, "deployment config").given()
    problems = []
    if "primary_key" in given or "secondary_key" in given:
        problems.append(
            "keys: an endpoint's versions share the endpoint's keys; set them with "
            "regen_key on the endpoint (modelport endpoint regen-key --set-key)"
        )
    for key, field in (("authEnabled", "auth_enabled"), ("tokenAuthEnabled", "token_auth_enabled")):
        value = bool(record.spec.get(key, key == "authEnabled"))
        if given.get(field) is not None and bool(given[field]) != value:
            problems.append(
                f"{key}: {given[field]} for one version, but endpoint "
                f"{record.name!r} has {key} {value} for all of them; change it with the "
                "endpoint's update (modelport endpoint update)"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def _check_local(compute_target: str | None) -> None:
    if compute_target not in (None, LOCAL):
        raise InvalidInputError(
            f"endpoints run on this machine's compute target in this release of modelport; "
            f"the Kubernetes compute target {compute_target!r} takes services only",
            hint="deploy the endpoint without a compute target, or each version as a service",
        )


def _check_sticky(sticky: Sticky | None) -> dict[str, str] | None:
    if sticky is None:
        return None
    given = {k: v for k, v in sticky.model_dump().items() if v}
    if len(given) != 1:
        raise InvalidInputError(
            "sticky takes one of header or cookie (the request value that keeps a client on "
            f"its version); got {sorted(given) or 'neither'}"
        )
    return {k: v.lower() if k == "header" else v for k, v in given.items()}


def _endpoint_settings(config_doc: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's own settings out of its first version's configuration (v1 puts
    auth and keys at the endpoint)."""
    config = deployment_config_from_document(config_doc, "deployment config").resolved()
    auth = getattr(config, "auth_enabled", None)
    token_auth = bool(getattr(config, "token_auth_enabled", None))
    return {
        "authEnabled": (not token_auth) if auth is None else bool(auth),
        "tokenAuthEnabled": token_auth,
    }


# -- views -----------------------------------------------------------------------------
def state_of(versions: list[str]) -> str:
    """One state for the endpoint from its versions' (the least settled wins)."""
    if not versions:
        return DELETING
    for state in (DELETING, TRANSITIONING, FAILED, "Unschedulable", "Unhealthy"):
        if state in versions:
            return state
    return HEALTHY


def endpoint_view(
    record: EndpointRecord, ws: ServerWorkspace, plane: ControlPlane
) -> dict[str, Any]:
    scoring = plane.scoring_uri(record.name)
    serving = plane.serving_versions(record)
    shares = rules.live_shares(record.versions, serving)
    versions: dict[str, Any] = {}
    states = []
    for version in record.versions:
        found = ws.services.find(record.service(version.name))
        if found is None:
            continue
        states.append(found.state)
        versions[version.name] = {
            **view(found, plane),
            **version.to_document(),
            "name": version.name,
            "service": found.name,
            "endpoint": record.name,
            "computeType": COMPUTE_TYPE,
            "scoringUri": scoring,
            "swaggerUri": scoring.rsplit("/", 1)[0] + "/swagger.json",
            "authEnabled": bool(record.spec.get("authEnabled", True)),
            "tokenAuthEnabled": bool(record.spec.get("tokenAuthEnabled", False)),
            "share": shares.get(version.name, 0),
            "serving": version.name in serving,
        }
    return {
        "name": record.name,
        "computeType": COMPUTE_TYPE,
        "state": DELETING if record.deleting else state_of(states),
        "error": next((v["error"] for v in versions.values() if v["error"]), None),
        "scoringUri": scoring,
        "swaggerUri": scoring.rsplit("/", 1)[0] + "/swagger.json",
        "authEnabled": bool(record.spec.get("authEnabled", True)),
        "tokenAuthEnabled": bool(record.spec.get("tokenAuthEnabled", False)),
        "appInsightsEnabled": bool(record.spec.get("appInsightsEnabled", False)),
        "description": record.spec.get("description"),
        "tags": record.spec.get("tags") or {},
        "properties": record.spec.get("properties") or {},
        "sticky": record.spec.get("sticky"),
        "tolerance": record.spec.get("tolerance", rules.TOLERANCE),
        "versions": versions,
        # As a service's view has them, so that v1's Webservice.list shows endpoints too.
        "models": sorted({m for v in versions.values() for m in v["models"]}),
        "warnings": _warnings(record, versions),
        "replicas": [r for v in versions.values() for r in v["replicas"]],
        "promotion": plane.promotion_view(record.name),
        "createdTime": record.created_time.isoformat(),
        "updatedTime": record.updated_time.isoformat(),
    }


def _warnings(record: EndpointRecord, versions: dict[str, Any]) -> list[str]:
    """What the endpoint's own settings and its versions' do not enforce here."""
    out = [APP_INSIGHTS_WARNING] if record.spec.get("appInsightsEnabled") else []
    for version in versions.values():
        out += [w for w in version["warnings"] if w not in out]
    return out


async def _view(name: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    record = await asyncio.to_thread(ws.endpoints.get, name)
    return await asyncio.to_thread(endpoint_view, record, ws, plane)


# -- endpoints ---------------------------------------------------------------------------
@router.post("/endpoints", status_code=202)
def create_endpoint(body: EndpointIn, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    check_service_name(body.name)
    _check_local(body.compute_target)
    config = deployment_config_from_document(body.deployment_config, "deployment config")
    _, named, _ = rules.version_config(config)
    version = check_service_name(body.version_name or named or body.name)
    if body.is_default is False or body.is_control_version_type is False:
        raise ConfigError(
            f"the first version {version!r} is the endpoint's default and its control"
        )
    given = _version_body(body)
    spec, percentile = _version_spec(ws, body.name, version, given)
    _check_target(plane, rules.service_name(body.name, version), spec)
    traffic = body.traffic_percentile if body.traffic_percentile is not None else percentile
    settings = {
        **_endpoint_settings(body.deployment_config),
        **_endpoint_metadata(body),
        **({"sticky": _check_sticky(body.sticky)} if body.sticky else {}),
        **({"tolerance": body.tolerance} if body.tolerance is not None else {}),
    }
    record = ws.endpoints.create(
        body.name,
        settings,
        _keys(body.deployment_config),
        Version(version, rules.check_percentile(traffic or 0), True, rules.CONTROL),
        spec,
    )
    plane.notify(record.service(version))
    plane.notify_endpoint(record.name)
    return endpoint_view(record, ws, plane)


def _version_body(body: VersionIn) -> dict[str, Any]:
    return body.model_dump(
        by_alias=True,
        include={"models", "inference_config", "snapshot", "deployment_config", *VERSION_METADATA},
        exclude_none=True,
    )


def _endpoint_metadata(body: EndpointIn) -> dict[str, Any]:
    """The endpoint's own description, tags and properties: given for it, else the
    first version's (as v1's deploy_configuration carries them)."""
    out = {}
    for key in VERSION_METADATA:
        value = getattr(body, f"endpoint_{key}")
        if value is None:
            value = getattr(body, key)
        if value is not None:
            out[key] = value
    return out


@router.get("/endpoints")
def list_endpoints(request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    return {"value": [endpoint_view(r, ws, plane) for r in ws.endpoints.list()]}


@router.get("/endpoints/{name}")
async def get_endpoint(name: str, request: Request) -> dict[str, Any]:
    return await _view(name, request)


@router.patch("/endpoints/{name}", status_code=202)
def update_endpoint(name: str, body: EndpointUpdate, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    changes = body.model_dump(by_alias=True, exclude_none=True)
    if not changes:
        raise InvalidInputError("No parameters provided to update.")
    current = ws.endpoints.get(name)
    changes.pop("authEnabled", None)
    changes.pop("tokenAuthEnabled", None)
    modes = auth_update(
        bool(current.spec.get("authEnabled", True)), body.auth_enabled, body.token_auth_enabled
    )
    if "auth_enabled" in modes:
        changes["authEnabled"] = modes["auth_enabled"]
    if "token_auth_enabled" in modes:
        changes["tokenAuthEnabled"] = modes["token_auth_enabled"]
    if "sticky" in changes:
        changes["sticky"] = _check_sticky(body.sticky)
    given = {k: changes[k] for k in VERSION_METADATA if k in changes}
    changes = {**changes, **_metadata(current.spec, given)}
    record = ws.endpoints.update(name, changes)
    plane.notify_endpoint(name)
    return endpoint_view(record, ws, plane)


@router.delete("/endpoints/{name}", status_code=202)
def delete_endpoint(name: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    record = ws.endpoints.mark_deleting(name)
    plane.notify_endpoint(name)
    for service in record.services:
        plane.notify(service)
    return {"name": record.name, "state": record.state}


# -- versions ---------------------------------------------------------------------------
@router.get("/endpoints/{name}/versions")
async def list_versions(name: str, request: Request) -> dict[str, Any]:
    view_ = await _view(name, request)
    return {"value": list(view_["versions"].values())}


@router.post("/endpoints/{name}/versions", status_code=202)
def create_version(name: str, body: VersionIn, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    current = ws.endpoints.get(name)
    config = deployment_config_from_document(body.deployment_config, "deployment config")
    _, named, _ = rules.version_config(config)
    version = body.version_name or named
    if version is None:
        raise InvalidInputError("a new version needs a versionName")
    check_service_name(version)
    rules.add(  # v1's rules first: a 7th version is refused before anything is checked
        list(current.versions),
        version,
        body.traffic_percentile or 0,
        body.is_default,
        body.is_control_version_type,
        body.shadow_percentile or 0,
    )
    _check_endpoint_owned(body.deployment_config, current)
    spec, percentile = _version_spec(ws, name, version, _version_body(body))
    _check_target(plane, rules.service_name(name, version), spec)
    traffic = body.traffic_percentile if body.traffic_percentile is not None else percentile
    record = ws.endpoints.add_version(
        name,
        version,
        spec,
        rules.check_percentile(traffic or 0),
        body.is_default,
        body.is_control_version_type,
        body.shadow_percentile or 0,
    )
    plane.notify(record.service(version))
    plane.notify_endpoint(name)
    return endpoint_view(record, ws, plane)


@router.patch("/endpoints/{name}/versions/{version}", status_code=202)
def update_version(
    name: str, version: str, body: VersionUpdate, request: Request
) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    given = body.model_dump(by_alias=True, exclude_none=True)
    if not given:
        raise InvalidInputError("No parameters provided to update.")
    record = ws.endpoints.get(name)
    rules.find(list(record.versions), version)
    service = ws.services.get(record.service(version))
    deployment: dict[str, Any] = {
        k: given[k]
        for k in ("models", "inferenceConfig", "snapshot", "deploymentConfig")
        if k in given
    }
    metadata = _metadata(service.spec, {k: given[k] for k in VERSION_METADATA if k in given})
    percentile = None
    changes: dict[str, Any] | None = None
    if deployment:
        merged: dict[str, Any] = {**service.spec, **deployment, **metadata}
        _check_endpoint_owned(body.deployment_config, record)
        spec, percentile = _version_spec(ws, name, version, merged)
        _check_target(plane, service.name, spec)
        changes = {k: spec[k] for k in (*deployment, *metadata) if k in spec}
    elif metadata:
        ws.services.update_metadata(service.name, metadata)
    traffic = body.traffic_percentile if body.traffic_percentile is not None else percentile
    record = ws.endpoints.update_version(
        name,
        version,
        changes,
        traffic,
        body.is_default,
        body.is_control_version_type,
        body.shadow_percentile,
    )
    if changes:
        plane.notify(service.name)
    plane.notify_endpoint(name)
    return endpoint_view(record, ws, plane)


@router.delete("/endpoints/{name}/versions/{version}", status_code=202)
def delete_version(name: str, version: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    record = ws.endpoints.delete_version(name, version)
    plane.notify_endpoint(name)
    plane.notify(record.service(version))  # drained once the router no longer deals to it
    return endpoint_view(record, ws, plane)


# -- keys, logs, events ------------------------------------------------------------------
@router.get("/endpoints/{name}/keys")
def endpoint_keys(name: str, request: Request) -> dict[str, Any]:
    record = workspace_of(request).endpoints.get(name)
    if record.spec.get("tokenAuthEnabled"):
        raise InvalidInputError(
            f"endpoint {name!r} uses token authentication: it takes tokens, not keys",
            hint=f"get a token: endpoint.get_access_token() or "
            f"modelport endpoint get-access-token -n {name}",
        )
    return {"primaryKey": record.primary_key, "secondaryKey": record.secondary_key}


@router.post("/endpoints/{name}/regenerateKeys")
def regenerate_endpoint_key(
    name: str, body: Annotated[Regenerate, Body()], request: Request
) -> dict[str, Any]:
    record = workspace_of(request).endpoints.set_key(name, *body.key())
    plane_of(request).notify_endpoint(name)
    return {"primaryKey": record.primary_key, "secondaryKey": record.secondary_key}


@router.get("/endpoints/{name}/logs")
async def endpoint_logs(
    name: str,
    request: Request,
    version: str | None = None,
    num_lines: Annotated[int, Query(ge=1, le=1_000_000)] = 5000,
) -> dict[str, Any]:
    """One version's replica logs (the default version's when none is named)."""
    record = await asyncio.to_thread(workspace_of(request).endpoints.get, name)
    chosen = rules.find(
        list(record.versions),
        version or next(v.name for v in record.versions if v.is_default),
    )
    logs = await plane_of(request).logs(record.service(chosen.name), num_lines)
    return {"name": name, "version": chosen.name, "logs": logs}


@router.get("/endpoints/{name}/events")
def endpoint_events(name: str, request: Request) -> dict[str, Any]:
    ws = workspace_of(request)
    ws.endpoints.get(name)
    return {"name": name, "value": ws.endpoints.events(name)}


# -- statistics and promotion ------------------------------------------------------------
@router.get("/endpoints/{name}/stats")
async def endpoint_stats(
    name: str, request: Request, window: Annotated[float, Query(gt=0, le=3600)] = 300
) -> dict[str, Any]:
    """Per version over the last ``window`` seconds: requests, errors by class, latency
    percentiles, queue rejections, and for shadows the agreement with the live answers."""
    record = await asyncio.to_thread(workspace_of(request).endpoints.get, name)
    return await plane_of(request).endpoint_stats(record, window)


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    version: str
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100], min_length=1)
    step_seconds: float = Field(60, alias="stepSeconds", gt=0, le=86400)
    max_error_rate_delta: float = Field(0.01, alias="maxErrorRateDelta", ge=0, le=1)
    max_p99_ratio: float = Field(1.5, alias="maxP99Ratio", gt=0)
    min_requests: int = Field(20, alias="minRequests", ge=1)


@router.post("/endpoints/{name}/promote", status_code=202)
async def promote(name: str, body: Promote, request: Request) -> dict[str, Any]:
    """Move traffic to ``version`` step by step while it stays within the bounds of the
    control; roll back the moment it does not (see ``control/promotion.py``)."""
    plane = plane_of(request)
    await plane.promote(name, body.model_dump(by_alias=True))
    return await _view(name, request)


@router.delete("/endpoints/{name}/promote", status_code=202)
async def cancel_promotion(name: str, request: Request) -> dict[str, Any]:
    """Stop a promotion and send the treatment's traffic back to the control."""
    await plane_of(request).cancel_promotion(name)
    return await _view(name, request)
