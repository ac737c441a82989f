"""Scoring requests: route lookup, key check, replica pick, forward, answer."""

from __future__ import annotations

import asyncio
import json
import logging

from modelport.httpserver import Request, Response
from modelport.router.table import Backend, Route, RouteTable
from modelport.router.upstream import ConnectFailed, Pool, UpstreamClosed, UpstreamResponse

log = logging.getLogger("modelport.router")

PREFIX = "/api/v1/service/"
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"host",
        b"content-length",
        b"authorization",
        b"date",
    }
)
JSON = (b"content-type", b"application/json")


def error(status: int, code: str, message: str, *extra: tuple[bytes, bytes]) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Response(status, body, [JSON, *extra])


UNAUTHORIZED = error(
    401, "unauthorized", "missing or wrong key", (b"www-authenticate", b'Bearer realm="modelport"')
)


class Proxy:
    def __init__(self) -> None:
        self.table = RouteTable()
        self.pool = Pool()

    def set_table(self, table: RouteTable) -> None:
        self.table = table
        keep = {(b.host, b.port) for r in table.routes.values() for b in r.backends}
        self.pool.forget(keep)

    async def handle(self, request: Request) -> Response:
        path = request.path
        if not path.startswith(PREFIX):
            return error(404, "not_found", f"no route {path}")
        name, _, action = path[len(PREFIX) :].partition("/")
        route = self.table.routes.get(name)
        if route is None:
            return error(404, "not_found", f"service {name!r} not found")
        if action == "score":
            return await self._score(route, request)
        if action == "swagger.json" and request.method == "GET":
            return await self._forward(route, request, "/swagger.json")
        return error(404, "not_found", f"no route {path}")

    async def _score(self, route: Route, request: Request) -> Response:
        if request.method not in ("GET", "POST", "OPTIONS"):
            return error(405, "method_not_allowed", f"method {request.method} is not allowed")
        if route.auth:
            header = next((v for k, v in request.headers if k == b"authorization"), None)
            if not route.authorised(header):
                return UNAUTHORIZED
        return await self._forward(route, request, "/score")

    async def _forward(self, route: Route, request: Request, target: str) -> Response:
        backend = route.pick()
        if backend is None:
            return error(
                503,
                "no_replica",
                f"service {route.name!r} has no ready replica",
                (b"retry-after", b"1"),
            )
        data = _encode_request(request, target, backend)
        try:
            upstream = await asyncio.wait_for(self._send(route, backend, data), route.timeout_s)
        except TimeoutError:
            return error(504, "timeout", f"the replica did not answer within {route.timeout_s:g} s")
        except ConnectFailed:
            return error(502, "bad_gateway", "no replica of the service could be reached")
        except UpstreamClosed as exc:
            return error(502, "bad_gateway", f"the replica failed while scoring: {exc}")
        return _response(upstream)

    async def _send(self, route: Route, backend: Backend, data: bytes) -> UpstreamResponse:
        """Send once; a connection that never opened is retried once on another replica."""
        try:
            return await self._send_to(backend, data)
        except ConnectFailed:
            retry = route.pick(exclude=backend) or backend
            log.info(
                "replica %s:%s unreachable; retrying on %s:%s",
                backend.host,
                backend.port,
                retry.host,
                retry.port,
            )
            return await self._send_to(retry, data)

    async def _send_to(self, backend: Backend, data: bytes) -> UpstreamResponse:
        backend.in_flight += 1
        try:
            return await self.pool.request(backend.host, backend.port, data)
        finally:
            backend.in_flight -= 1


def _encode_request(request: Request, target: str, backend: Backend) -> bytes:
    query = f"?{request.query}" if request.query else ""
    parts = [
        f"{request.method} {target}{query} HTTP/1.1\r\n".encode(),
        f"host: {backend.host}:{backend.port}\r\n".encode(),
    ]
    for name, value in request.headers:
        if name not in HOP_BY_HOP:
            parts.append(name + b": " + value + b"\r\n")
    parts.append(b"content-length: " + str(len(request.body)).encode() + b"\r\n\r\n")
    parts.append(request.body)
    return b"".join(parts)


def _response(upstream: UpstreamResponse) -> Response:
    headers = [(k, v) for k, v in upstream.headers if k not in HOP_BY_HOP]
    # As the v1 front end did: a scoring script's crash (500) reaches clients as 502.
    status = 502 if upstream.status == 500 else upstream.status
    return Response(status, upstream.body, headers)
