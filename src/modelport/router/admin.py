"""The router's admin port: route table updates from the control plane, health."""

from __future__ import annotations

import hmac
import json
import logging

from modelport.httpserver import Request, Response
from modelport.metrics import CONTENT_TYPE
from modelport.router.proxy import Proxy, error
from modelport.router.stats import render, snapshot
from modelport.router.table import build_table

log = logging.getLogger("modelport.router")


class Admin:
    def __init__(self, proxy: Proxy, token: str) -> None:
        self.proxy = proxy
        self._expected = f"Bearer {token}".encode()

    async def handle(self, request: Request) -> Response:
        header = next((v for k, v in request.headers if k == b"authorization"), b"")
        if not hmac.compare_digest(header, self._expected):
            return error(401, "unauthorized", "missing or wrong admin token")
        if request.path.startswith("/forward/") and request.path.endswith("/score"):
            name = request.path.removeprefix("/forward/").removesuffix("/score")
            return await self.proxy.score_forwarded(name, request)
        if request.path.startswith("/forward/") and "/v2/" in request.path:  # OIP, see oip.py
            name, _, rest = request.path.removeprefix("/forward/").partition("/")
            route = self.proxy.table.routes.get(name)
            if request.method == "GET" and route is not None and route.forward is None:
                return await self.proxy.fetch(route, request, "/" + rest)  # metadata: no slot
            return await self.proxy.score_forwarded(name, request, "/" + rest)
        if request.path == "/metrics" and request.method == "GET":
            body = render(self.proxy.table)
            return Response(200, body, [(b"content-type", CONTENT_TYPE)])
        if request.path == "/stats" and request.method == "GET":
            body = json.dumps(snapshot(self.proxy.table)).encode()
            return Response(200, body, [(b"content-type", b"application/json")])
        if request.path == "/healthz" and request.method == "GET":
            body = json.dumps({"revision": self.proxy.table.revision}).encode()
            return Response(200, body, [(b"content-type", b"application/json")])
        if request.path == "/routes" and request.method == "PUT":
            try:
                table = build_table(json.loads(request.body), self.proxy.table)
            except (ValueError, KeyError, TypeError) as exc:
                return error(400, "invalid_input", f"bad route table: {exc}")
            self.proxy.set_table(table)
            log.info("route table revision %d: %d services", table.revision, len(table.routes))
            return Response(
                200,
                json.dumps({"revision": table.revision}).encode(),
                [(b"content-type", b"application/json")],
            )
        return error(404, "not_found", f"no route {request.path}")
