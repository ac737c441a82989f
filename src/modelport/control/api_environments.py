"""Management API: the environment registry."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response

from modelport.control.workspace import workspace_of
from modelport.envs.builder import build_key, machine_cache_dir
from modelport.errors import NotFoundError
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.names import MAX_VERSION
from modelport.store.faults import os_fault

router = APIRouter(prefix="/api/v1")


@router.post("/environments", status_code=201)
def register_environment(
    doc: Annotated[dict[str, Any], Body()], request: Request, response: Response
) -> dict[str, Any]:
    """Register a new version; an unchanged definition returns the latest (200)."""
    spec = EnvironmentSpec.from_document(doc)
    record, created = workspace_of(request).environments.register(spec)
    if not created:
        response.status_code = 200
    return record.to_dict()


@router.get("/environments")
def list_environments(
    request: Request, name: str | None = None, latest: bool = False
) -> dict[str, Any]:
    records = workspace_of(request).environments.list(name, latest)
    return {"value": [r.to_dict() for r in records]}


@router.get("/environments/{name}")
def get_latest_environment(name: str, request: Request) -> dict[str, Any]:
    return workspace_of(request).environments.get(name).to_dict()


@router.get("/environments/{name}/versions/{version}")
def get_environment(
    name: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], request: Request
) -> dict[str, Any]:
    return workspace_of(request).environments.get(name, version).to_dict()


@router.get("/environments/{name}/versions/{version}/buildLog")
async def build_log(
    name: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], request: Request
) -> dict[str, Any]:
    """The log of this machine's build of the environment (every step and uv's output),
    kept beside the build in the machine cache."""
    record = await asyncio.to_thread(workspace_of(request).environments.get, name, version)
    path = machine_cache_dir() / f"{build_key(record.spec)}.build.log"
    try:
        text = await asyncio.to_thread(path.read_text, errors="replace")
    except FileNotFoundError:
        raise NotFoundError(
            f"environment {name}:{version} has not been built on this machine",
            hint="it is built when a service using it is deployed",
        ) from None
    except OSError as exc:
        raise os_fault(exc, "read the build log", path) from exc
    return {"name": name, "version": str(version), "log": text}
