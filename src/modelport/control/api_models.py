"""Management API: content-addressed uploads and the model registry."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from modelport.control.workspace import workspace_of
from modelport.errors import InvalidInputError, NotFoundError, StorageUnavailableError
from modelport.spec.model import ModelRegistration
from modelport.spec.names import MAX_VERSION

router = APIRouter(prefix="/api/v1")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# A version as stored: a 64-bit integer, so larger numbers are a 400, not a 500.
Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]


def _digest(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise InvalidInputError(f"{value!r} is not a sha256 digest (64 lowercase hex digits)")
    return value


def parse_filters(values: list[str]) -> dict[str, str | None]:
    """``key=value`` or ``key`` (any value) filters from repeated query params."""
    out: dict[str, str | None] = {}
    for item in values:
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


@router.head("/blobs/{digest}")
def blob_exists(digest: str, request: Request) -> Response:
    ws = workspace_of(request)
    # touch: keeps it from garbage collection while a registration runs
    if not ws.blobs.touch(_digest(digest)):
        return Response(status_code=404)
    return Response(status_code=200, headers={"x-blob-size": str(ws.blobs.size(digest))})


@router.put("/blobs/{digest}", status_code=201)
async def upload_blob(digest: str, request: Request) -> dict[str, Any]:
    """Stream the body to disk while hashing; it is kept only if the hash matches."""
    ws = workspace_of(request)
    with ws.blobs.writer(expected=_digest(digest)) as writer:
        try:
            async for chunk in request.stream():
                writer.write(chunk)
        except ClientDisconnect as exc:
            raise InvalidInputError("the upload was interrupted") from exc
        sha, size = await run_in_threadpool(writer.commit)
    return {"sha256": sha, "size": size}


@router.post("/models", status_code=201)
def register_model(reg: ModelRegistration, request: Request) -> dict[str, Any]:
    return workspace_of(request).models.register(reg).to_dict()


@router.get("/models")
def list_models(
    request: Request,
    name: str | None = None,
    tag: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    property: Annotated[list[str], Query()] = [],  # noqa: B006
    latest: bool = False,
) -> dict[str, Any]:
    records = workspace_of(request).models.list(
        name, parse_filters(tag), parse_filters(property), latest
    )
    return {"value": [r.to_dict() for r in records]}


@router.get("/models/{name}")
def get_latest_model(name: str, request: Request) -> dict[str, Any]:
    return workspace_of(request).models.get(name).to_dict()


@router.get("/models/{name}/versions/{version}")
def get_model(name: str, version: Version, request: Request) -> dict[str, Any]:
    return workspace_of(request).models.get(name, version).to_dict()


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    description: str | None = None
    add_tags: dict[str, str] = Field(default_factory=dict, alias="addTags")
    remove_tags: list[str] = Field(default_factory=list, alias="removeTags")
    add_properties: dict[str, str] = Field(default_factory=dict, alias="addProperties")


@router.patch("/models/{name}/versions/{version}")
def update_model(
    name: str, version: Version, update: Annotated[ModelUpdate, Body()], request: Request
) -> dict[str, Any]:
    record = workspace_of(request).models.update(
        name,
        version,
        description=update.description,
        add_tags=update.add_tags,
        remove_tags=update.remove_tags,
        add_properties=update.add_properties,
    )
    return record.to_dict()


@router.delete("/models/{name}/versions/{version}")
def delete_model(name: str, version: Version, request: Request) -> dict[str, Any]:
    return workspace_of(request).models.delete(name, version).to_dict()


@router.get("/models/{name}/versions/{version}/files/{path:path}")
def download_model_file(name: str, version: Version, path: str, request: Request) -> FileResponse:
    ws = workspace_of(request)
    record = ws.models.get(name, version)
    entry = next((f for f in record.files if f.path == path), None)
    if entry is None:
        raise NotFoundError(f"model {record.id} has no file {path!r}")
    if not ws.blobs.exists(entry.sha256):
        raise StorageUnavailableError(
            f"the content of {path!r} of model {record.id} is missing from the artifact store "
            f"({ws.blobs.path(entry.sha256)})",
            hint="restore the artifact store, or register the model again",
        )
    return FileResponse(
        ws.blobs.path(entry.sha256),
        media_type="application/octet-stream",
        headers={"x-content-sha256": entry.sha256},
    )
