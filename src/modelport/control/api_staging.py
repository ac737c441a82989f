"""Staging API: a pod fetches its generation's files by content hash.

Callers are pods, not users: every call needs the generation's staging
credential (:mod:`modelport.compute.kubernetes.credential`), never the admin token,
and a credential opens its own generation only.  The layout says where each file
goes under the app root (the same placement the local target lays out); a blob is
served only when it belongs to that generation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from modelport.compute import layout
from modelport.compute.kubernetes import credential
from modelport.control.workspace import ServerWorkspace, workspace_of
from modelport.errors import NotFoundError, UnauthorizedError
from modelport.spec.model import ModelFile
from modelport.spec.names import parse_model_id
from modelport.store.models import ModelRecord

PREFIX = "/api/v1/staging/"  # outside the admin token's reach: see control/auth.py
router = APIRouter(prefix=PREFIX.rstrip("/"))


def _grant(request: Request, service: str, generation: int) -> credential.Grant:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("a staging credential is required (Authorization: Bearer ...)")
    ws = workspace_of(request)
    grant = credential.verify(credential.signing_key(ws.home), token.strip())
    scope = grant.scope
    if (scope.service, scope.generation) != (service, generation):
        raise NotFoundError(
            f"this credential stages service {scope.service} generation {scope.generation}, "
            f"not service {service} generation {generation}"
        )
    record = ws.services.find(service)
    if record is None or record.created_time.timestamp() > grant.issued_at + 1:
        # deleted, or deleted and made again: credentials of the old one open nothing
        raise NotFoundError(f"service {service} not found")
    return grant


def _contents(
    ws: ServerWorkspace, scope: credential.Scope
) -> tuple[str, list[ModelFile], list[ModelRecord]]:
    basename, files = ws.snapshots.get(scope.snapshot)
    models = [ws.models.get(*parse_model_id(m)) for m in scope.models]
    return basename, files, models


@router.get("/{service}/{generation}")
def staging_layout(service: str, generation: int, request: Request) -> dict[str, Any]:
    ws = workspace_of(request)
    scope = _grant(request, service, generation).scope
    basename, source, models = _contents(ws, scope)
    placed, folders = layout.placement(basename, source, models)
    return {
        "service": service,
        "generation": generation,
        "snapshot": {
            "id": scope.snapshot,
            "basename": basename,
            "files": [f.model_dump() for f in source],
        },
        "models": [
            {
                "id": m.id,
                "name": m.name,
                "version": m.version,
                "kind": m.kind,
                "basename": m.basename,
                "files": [f.model_dump() for f in m.files],
            }
            for m in models
        ],
        "files": [f.model_dump() for f in placed],
        "folders": folders,
    }


@router.get("/{service}/{generation}/blobs/{sha256}")
def staging_blob(service: str, generation: int, sha256: str, request: Request) -> FileResponse:
    ws = workspace_of(request)
    scope = _grant(request, service, generation).scope
    basename, source, models = _contents(ws, scope)
    placed, _ = layout.placement(basename, source, models)
    if sha256 not in {f.sha256 for f in placed} or not ws.blobs.exists(sha256):
        raise NotFoundError(
            f"blob {sha256[:64]} is not part of service {service} generation {generation}"
        )
    return FileResponse(ws.blobs.path(sha256), media_type="application/octet-stream")
