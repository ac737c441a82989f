"""Model data from replica pods: rows appended to the service's partitions.

A replica on a Kubernetes target keeps nothing on its pod's disk: its
``ModelDataCollector`` posts each batch here, and the rows land in the same files
the local target's replicas write (``modeldata/default/<service>/...``), so export
and retention treat both alike.  Callers are pods with their generation's
model-data credential (:mod:`modelport.compute.kubernetes.credential`, audience
``MODEL_DATA``), never the admin token: a credential appends to its own service
only, into a partition the server checks, and can be exchanged for a fresh one
while it is valid (a pod lives longer than a credential).  A cluster's router pods
send the requests they capture the same way (``/_routers/<target>/capture``, with
their compute target's capture credential), for the services that exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from modelport.compute import layout
from modelport.compute.kubernetes import credential
from modelport.control import modeldata, requestfile
from modelport.control.api_staging import bearer, generation_grant
from modelport.control.workspace import workspace_of
from modelport.errors import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from modelport.rowsink import Rows, append_rows

PREFIX = "/api/v1/ingest/"  # outside the admin token's reach: see control/auth.py
MAX_BODY = 16 << 20  # a replica sends at most a few MiB per batch (rowupload.py)
router = APIRouter(prefix=PREFIX.rstrip("/"))


def _routers_grant(request: Request, target: str) -> credential.Grant:
    token = bearer(request, "capture")
    ws = workspace_of(request)
    grant = credential.verify(credential.signing_key(ws.home), token, audience=credential.CAPTURE)
    if grant.scope.service != target:
        raise NotFoundError(
            f"this credential captures for the routers of compute target {grant.scope.service}, "
            f"not {target}"
        )
    record = ws.computes.find(target)
    if record is None or record.created_time.timestamp() > grant.issued_at + 1:
        # detached, or detached and attached again: its old routers append nothing
        raise NotFoundError(f"compute target {target} not found")
    return grant


def _grant(request: Request, service: str, generation: int) -> credential.Grant:
    return generation_grant(request, service, generation, credential.MODEL_DATA, "collects for")


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLargeError(f"a batch is at most {MAX_BODY} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLargeError(f"a batch is at most {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise InvalidInputError("the batch was interrupted") from exc
    return b"".join(chunks)


async def _body(request: Request) -> dict[str, Any]:
    raw = await _raw_body(request)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidInputError(f"a batch of model data is a JSON object ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInputError("a batch of model data is a JSON object")
    return body


def _partition(body: dict[str, Any]) -> str:
    partition = body.get("partition")
    if not isinstance(partition, str):
        raise InvalidInputError("partition: a string naming the partition's folder")
    return partition


def _rows(path: Path, body: dict[str, Any]) -> Rows:
    """The batch to append to ``path``, checked: a header of strings, rows of plain
    values at most as wide as the header."""
    header, rows = body.get("header"), body.get("rows")
    if not (isinstance(header, list) and header and all(isinstance(h, str) for h in header)):
        raise InvalidInputError("header: a list of column names")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise InvalidInputError("rows: a list of lists of values")
    for row in rows:
        if len(row) > len(header) or any(isinstance(v, dict | list) for v in row):
            raise InvalidInputError("rows: each is at most as wide as the header, of plain values")
    return Rows(path, tuple(header), rows)


@router.post("/{service}/{generation:int}/modeldata", status_code=204)
async def append_model_data(service: str, generation: int, request: Request) -> Response:
    """Append one batch of a replica's collected rows (with the header in a new file)."""
    await run_in_threadpool(_grant, request, service, generation)  # reads the store
    body = await _body(request)
    ws = workspace_of(request)
    root = await run_in_threadpool(layout.model_data_dir, ws.home, service)
    batch = _rows(modeldata.received_partition(root, _partition(body)), body)
    if batch.rows:
        await run_in_threadpool(append_rows, batch)
    return Response(status_code=204)


@router.post("/_routers/{target}/capture", status_code=204)
async def append_capture(target: str, request: Request) -> Response:
    """Append one batch of requests a cluster's router captured, for a service that
    exists (a deleted service's last rows are dropped: 404)."""
    await run_in_threadpool(_routers_grant, request, target)
    body = await _body(request)
    service, relative = modeldata.received_capture(_partition(body))
    ws = workspace_of(request)
    if await run_in_threadpool(ws.services.find, service) is None:
        raise NotFoundError(f"service {service} not found")
    root = await run_in_threadpool(layout.model_data_dir, ws.home, service)
    batch = _rows(root / relative, body)
    if batch.rows:
        await run_in_threadpool(append_rows, batch)
    return Response(status_code=204)


@router.post("/_routers/{target}/requests", status_code=204)
async def append_requests(target: str, request: Request) -> Response:
    """Append a cluster's router's request log lines (JSON lines) to the compute
    target's file beside this machine's routers' (``service requests`` reads both)."""
    await run_in_threadpool(_routers_grant, request, target)
    text = await _raw_body(request)
    ws = workspace_of(request)
    folder = layout.request_log_dir(ws.home)
    await run_in_threadpool(requestfile.append, folder / f"requests-{target}.jsonl", text)
    return Response(status_code=204)


@router.post("/_routers/{target}/credential")
def renew_capture_credential(target: str, request: Request) -> dict[str, Any]:
    """A fresh capture credential for the routers holding a valid one."""
    grant = _routers_grant(request, target)
    key = credential.signing_key(workspace_of(request).home)
    return _answer(credential.mint(key, grant.scope, audience=credential.CAPTURE))


@router.post("/{service}/{generation:int}/credential")
def renew_model_data_credential(service: str, generation: int, request: Request) -> dict[str, Any]:
    """A fresh model-data credential for the holder of a valid one, of the same scope."""
    grant = _grant(request, service, generation)
    ws = workspace_of(request)
    minted = credential.mint(
        credential.signing_key(ws.home), grant.scope, audience=credential.MODEL_DATA
    )
    return _answer(minted)


def _answer(minted: credential.Credential) -> dict[str, Any]:
    return {"token": minted.token, "expires_at": minted.expires_at, "refresh_at": minted.refresh_at}
