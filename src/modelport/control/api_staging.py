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


def bearer(request: Request, what: str) -> str:
    """The request's bearer credential; :class:`UnauthorizedError` naming ``what`` without."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError(f"a {what} credential is required (Authorization: Bearer ...)")
    return token.strip()


def generation_grant(
    request: Request,
    service: str,
    generation: int,
    audience: str = credential.AUDIENCE,
    verb: str = "stages",
) -> credential.Grant:
    """What the pod's credential for ``audience`` grants, if it names this service's
    generation (``verb``: what it does, for the refusal) and the service still exists."""
    what = "staging" if audience == credential.AUDIENCE else "model-data"
    ws = workspace_of(request)
    key = credential.signing_key(ws.home)
    grant = credential.verify(key, bearer(request, what), audience=audience)
    scope = grant.scope
    if (scope.service, scope.generation) != (service, generation):
        raise NotFoundError(
            f"this credential {verb} service {scope.service} generation {scope.generation}, "
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
    scope = generation_grant(request, service, generation).scope
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
    scope = generation_grant(request, service, generation).scope
    basename, source, models = _contents(ws, scope)
    placed, _ = layout.placement(basename, source, models)
    if sha256 not in {f.sha256 for f in placed} or not ws.blobs.exists(sha256):
        raise NotFoundError(
            f"blob {sha256[:64]} is not part of service {service} generation {generation}"
        )
    return FileResponse(ws.blobs.path(sha256), media_type="application/octet-stream")
