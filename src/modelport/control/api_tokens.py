"""Management API: scoring tokens, their signing keys, and scoring clients.

``POST /services/{name}/token`` (and ``/endpoints/{name}/token``) answer v1's
``{accessToken, tokenType, refreshAfter, expiryOn}`` to the admin or to a scoring
client holding the service (``auth.py`` lets clients reach nothing else).
``GET /tokens/jwks`` is public: it holds public keys only.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelport.compute import plan
from modelport.control.api_services import _plain
from modelport.control.plane import plane_of
from modelport.control.tokens import ADMIN_SUBJECT
from modelport.control.workspace import workspace_of
from modelport.errors import ForbiddenError, InvalidInputError
from modelport.store.tokens import ScoringClient

router = APIRouter(prefix="/api/v1")
JWKS_PATH = "/api/v1/tokens/jwks"
CLIENT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


def caller(request: Request) -> ScoringClient | None:
    """The scoring client making this request, or None for the admin."""
    client: ScoringClient | None = getattr(request.state, "client", None)
    return client


def _subject(request: Request, name: str) -> str:
    client = caller(request)
    if client is None:
        return ADMIN_SUBJECT
    if name not in client.services:  # auth.py refuses these first; kept as a second check
        raise ForbiddenError(f"scoring client {client.name!r} holds no grant for {name!r}")
    return client.name


@router.post("/services/{name}/token")
async def service_token(name: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    subject = _subject(request, name)
    record = await asyncio.to_thread(ws.services.get, _plain(name))
    if not plan.plan(record.spec).token_auth:
        raise InvalidInputError(
            f"service {name!r} does not use token authentication (tokenAuthEnabled is false): "
            "it takes its keys",
            hint=f"get its keys (modelport service keys -n {name}), or update it with "
            "token_auth_enabled=True, auth_enabled=False",
        )
    token = await asyncio.to_thread(plane.tokens.mint, name, subject)
    return token.to_dict()


@router.post("/endpoints/{name}/token")
async def endpoint_token(name: str, request: Request) -> dict[str, Any]:
    ws, plane = workspace_of(request), plane_of(request)
    subject = _subject(request, name)
    record = await asyncio.to_thread(ws.endpoints.get, name)
    if not record.spec.get("tokenAuthEnabled"):
        raise InvalidInputError(
            f"endpoint {name!r} does not use token authentication (tokenAuthEnabled is false): "
            "it takes its keys",
            hint=f"get its keys (modelport endpoint keys -n {name}), or update it with "
            "token_auth_enabled=True, auth_enabled=False",
        )
    token = await asyncio.to_thread(plane.tokens.mint, name, subject)
    return token.to_dict()


@router.get("/tokens/jwks")
async def published_keys(request: Request) -> dict[str, Any]:
    table = await asyncio.to_thread(plane_of(request).tokens.table)
    return {"keys": table["keys"]}


@router.get("/tokens/keys")
async def signing_keys(request: Request) -> dict[str, Any]:
    plane = plane_of(request)
    return {
        "issuer": plane.tokens.issuer,
        "lifetimeSeconds": plane.tokens.lifetime_s,
        "value": await asyncio.to_thread(plane.tokens.key_views),
    }


@router.post("/tokens/rotate-key")
async def rotate_key(request: Request) -> dict[str, Any]:
    plane = plane_of(request)
    return {"issuer": plane.tokens.issuer, "value": await plane.rotate_signing_key()}


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    services: list[str] = Field(min_length=1)


@router.post("/clients", status_code=201)
def create_client(body: ClientIn, request: Request) -> dict[str, Any]:
    ws = workspace_of(request)
    if not CLIENT_NAME.match(body.name):
        raise InvalidInputError(
            f"client name {body.name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    for service in body.services:
        if ws.services.find(service) is None and ws.endpoints.find(service) is None:
            raise InvalidInputError(f"no service or endpoint named {service!r}")
    client, secret = ws.tokens.create_client(body.name, body.services)
    return {**client.to_dict(), "secret": secret}


@router.get("/clients")
def list_clients(request: Request) -> dict[str, Any]:
    return {"value": [c.to_dict() for c in workspace_of(request).tokens.clients()]}


@router.delete("/clients/{name}")
def delete_client(name: str, request: Request) -> dict[str, Any]:
    workspace_of(request).tokens.delete_client(name)
    return {"name": name, "deleted": True}
