"""Admin-token check for every management call, as plain ASGI middleware.

It sits outside routing, so unknown paths and ``/openapi.json`` need the token
too and nothing about the API shows to a caller without it.  Paths under an
``exempt`` prefix are for other callers with credentials of their own (pods
staging their files): there the admin token is not asked for, nor accepted.
``public`` paths (liveness) are open to anyone, by exact path and GET only.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = json.dumps(
    {"error": {"code": "unauthorized", "message": "missing or wrong admin token"}}
).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"www-authenticate", b'Bearer realm="modelport"'),
]


class AdminTokenMiddleware:
    def __init__(
        self, app: ASGIApp, token: str, exempt: tuple[str, ...] = (), public: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._exempt = exempt
        self._public = frozenset(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._authorised(scope) or self._exempted(scope):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _BODY})

    def _exempted(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in self._public and scope["method"] in ("GET", "HEAD"):
            return True
        return path.startswith(self._exempt)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False
