"""Management API: the environment registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response

from modelport.control.workspace import workspace_of
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.names import MAX_VERSION

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
