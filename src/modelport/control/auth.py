"""Credential check for every management call, as plain ASGI middleware.

It sits outside routing, so unknown paths and ``/openapi.json`` need the token
too and nothing about the API shows to a caller without it.  Paths under an
``exempt`` prefix are for other callers with credentials of their own (pods
staging their files, replicas appending model data): there the admin token is not
asked for, nor accepted.
``public`` paths (liveness; the JWKS: public keys only) are open to anyone, by
exact path and to read only.

A scoring client's secret opens exactly two things, for the services and endpoints
it was created for: ``POST .../{name}/token`` and ``GET .../{name}`` (what the SDK
reads to score: the scoring URI and the auth mode).  Anything else is a 403 that
names the client, so a leaked client secret never reaches keys, models or settings.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.spec.names import CLIENT_SECRET_PREFIX
from modelport.store.tokens import ScoringClient

_BODY = json.dumps(
    {"error": {"code": "unauthorized", "message": "missing or wrong admin token"}}
).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"www-authenticate", b'Bearer realm="modelport"'),
]
# What a scoring client may do: (method, path) -> the service or endpoint it names.
_CLIENT_PATHS = (
    ("POST", re.compile(r"^/api/v1/(?:services|endpoints)/([^/]+)/token$")),
    ("GET", re.compile(r"^/api/v1/(?:services|endpoints)/([^/]+)$")),
)


class AdminTokenMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        token: str,
        exempt: tuple[str, ...] = (),
        public: tuple[str, ...] = (),
        clients: Callable[[str], ScoringClient | None] | None = None,
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._exempt = exempt
        self._public = frozenset(public)
        self._clients = clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempted(scope):
            await self.app(scope, receive, send)
            return
        header = _authorization(scope)
        if header is not None and hmac.compare_digest(header, self._expected):
            await self.app(scope, receive, send)
            return
        client = await self._client(header)
        if client is None:
            await _answer(send, 401, _BODY, _HEADERS)
            return
        refusal = _client_refusal(client, scope["method"], scope["path"])
        if refusal is not None:
            body = json.dumps({"error": {"code": "forbidden", "message": refusal}}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await _answer(send, 403, body, headers)
            return
        scope.setdefault("state", {})["client"] = client
        await self.app(scope, receive, send)

    def _exempted(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in self._public and scope["method"] in ("GET", "HEAD"):
            return True
        return path.startswith(self._exempt)

    async def _client(self, header: bytes | None) -> ScoringClient | None:
        prefix = b"Bearer " + CLIENT_SECRET_PREFIX.encode()
        if self._clients is None or header is None or not header.startswith(prefix):
            return None
        secret = header[7:].decode("latin-1").strip()
        return await anyio.to_thread.run_sync(self._clients, secret)


def _client_refusal(client: ScoringClient, method: str, path: str) -> str | None:
    """Why ``client`` may not make this call, or None."""
    for allowed, pattern in _CLIENT_PATHS:
        found = pattern.match(path)
        if found and method == allowed:
            if found.group(1) in client.services:
                return None
            return (
                f"scoring client {client.name!r} may obtain tokens only for "
                f"{', '.join(client.services)}"
            )
    return (
        f"scoring client {client.name!r} may only obtain tokens for its services "
        "(POST /api/v1/services/NAME/token); use the admin token for anything else"
    )


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
