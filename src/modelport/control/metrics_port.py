"""The workspace's metrics address (``modelport up --metrics-port N``) and its credential.

``GET /metrics`` answers the routers' counters (every worker's added up, and each
attached cluster's routers) with the control plane's own (autoscaling decisions,
replica states and restarts), in the Prometheus text format (``modelport/metrics.py``).
Each local replica's own counters (init() time, run() times, collected rows) are read
from its health socket at scrape time.  It takes ``Authorization: Bearer`` with the
read-only metrics token or the admin token; anything else is a 401.  ``GET /healthz``
is open and says only "ok".

The metrics token is made by ``modelport metrics token``, shown once; the workspace
keeps its SHA-256 alone (``metrics.json``, mode 0600), read again at each scrape so a
new token takes over at once.  It grants nothing but this port's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from modelport.compute.shares import merge_stats
from modelport.compute.target import ClusterTarget
from modelport.httpserver import HttpProtocol, Request, Response, ServerState
from modelport.metrics import (
    CONTENT_TYPE,
    control_families,
    exposition,
    replica_families,
    router_families,
    routers_up,
)
from modelport.spec.compute import LOCAL

if TYPE_CHECKING:
    from modelport.control.plane import ControlPlane

log = logging.getLogger("modelport.control")
JSON = (b"content-type", b"application/json")
HEALTHY = Response(200, b'{"status":"ok"}', [JSON])
UNAUTHORIZED = Response(
    401,
    json.dumps(
        {"error": {"code": "unauthorized", "message": "missing or wrong metrics token"}}
    ).encode(),
    [JSON, (b"www-authenticate", b'Bearer realm="modelport-metrics"')],
)
NOT_FOUND = Response(
    404,
    json.dumps({"error": {"code": "not_found", "message": "only /metrics and /healthz"}}).encode(),
    [JSON],
)


def credential_path(home: Path) -> Path:
    return home / "metrics.json"


def digest(token: str | bytes) -> str:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


def new_metrics_token(home: Path) -> str:
    """A new read-only metrics token; the one before stops working.  Only its digest
    is kept: the caller shows it once."""
    from modelport.home import write_private_json

    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # as `modelport up` makes it
    token = "mpm_" + secrets.token_urlsafe(32)
    write_private_json(credential_path(home), {"sha256": digest(token)})
    return token


def metrics_digest(home: Path) -> str | None:
    try:
        value = json.loads(credential_path(home).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def allowed(header: bytes, admin_token: str, metrics_sha256: str | None) -> bool:
    """The metrics token or the admin token, compared in constant time."""
    scheme, _, presented = header.partition(b" ")
    if scheme.lower() != b"bearer" or not presented:
        return False
    admin = hmac.compare_digest(presented, admin_token.encode())
    metrics = metrics_sha256 is not None and hmac.compare_digest(digest(presented), metrics_sha256)
    return admin or metrics


class MetricsServer:
    """Serves the metrics port on the control plane's loop (the router's HTTP server)."""

    def __init__(self, plane: ControlPlane, sock: socket.socket) -> None:
        self.plane = plane
        self.sock = sock
        self.state = ServerState(self.handle)
        self._server: asyncio.Server | None = None
        self._client = httpx.AsyncClient(timeout=1.0)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpProtocol(self.state), sock=self.sock)
        log.info("metrics on %s/metrics", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.state.begin_shutdown()
            await self.state.wait_idle(2.0)
            await self._server.wait_closed()
        self.sock.close()
        await self._client.aclose()

    async def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return NOT_FOUND
        if request.path == "/healthz":
            return HEALTHY
        if request.path != "/metrics":
            return NOT_FOUND
        header = next((v for k, v in request.headers if k == b"authorization"), b"")
        home = self.plane.workspace.home
        expected = await asyncio.to_thread(metrics_digest, home)
        if not allowed(header, self.plane.workspace.admin_token, expected):
            return UNAUTHORIZED
        return Response(200, await self.render(), [(b"content-type", CONTENT_TYPE)])

    async def render(self) -> bytes:
        stats, answered = await self.router_stats()
        families = router_families(stats) if stats is not None else []
        replicas = {name: c.replica_views() for name, c in self.plane.controllers.items()}
        families += control_families(self.plane.counters, replicas)
        families.append(routers_up(answered))
        families += replica_families(await self.replica_stats())
        return exposition(families)

    async def replica_stats(self) -> dict[str, list[dict[str, Any]]]:
        """Each deployed replica's own counters, from its health socket (those that
        have one and answer within a second)."""
        asks: list[tuple[str, Awaitable[dict[str, Any] | None]]] = []
        pods: list[tuple[str, Awaitable[list[dict[str, Any]]]]] = []
        for name, controller in self.plane.controllers.items():
            deployment = controller.current
            if deployment is None:
                continue
            if isinstance(controller.target, ClusterTarget):  # its pods, through the API
                pods.append((name, controller.target.replica_stats(name, deployment.replicas)))
                continue
            for replica in deployment.replicas.replicas():
                if replica.stats_port is not None:
                    asks.append((name, self._replica(replica.host, replica.stats_port)))
        answers = await asyncio.gather(*(ask for _, ask in asks))
        found: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in asks + pods}
        for (name, _), answer in zip(asks, answers, strict=True):
            if answer is not None:
                found[name].append(answer)
        pod_answers = await asyncio.gather(*(ask for _, ask in pods), return_exceptions=True)
        for (name, _), listed in zip(pods, pod_answers, strict=True):
            if isinstance(listed, BaseException):
                log.warning("metrics: the pods of %s did not answer: %s", name, listed)
            else:
                found[name].extend(listed)
        return found

    async def _replica(self, host: str, port: int) -> dict[str, Any] | None:
        try:
            response = await self._client.get(f"http://{host}:{port}/stats")
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            return None  # starting, stopping, or a runtime without counters
        return answer if response.status_code == 200 and "runCounts" in answer else None

    async def router_stats(self) -> tuple[dict[str, Any] | None, dict[str, bool]]:
        """This machine's router and every attached cluster's added up, of those that
        answer; and which answered (by compute target), so a gap shows as such."""
        readers: dict[str, Awaitable[dict[str, Any] | None]] = {}
        if self.plane.router is not None:
            readers[LOCAL] = self.plane.router.stats()
        for name, target in self.plane.targets.items():
            if isinstance(target, ClusterTarget):
                readers[name] = target.stats()
        results = await asyncio.gather(*readers.values(), return_exceptions=True)
        found: list[dict[str, Any]] = []
        answered = {}
        for name, result in zip(readers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("metrics: the routers of %s did not answer: %s", name, result)
            answered[name] = isinstance(result, dict)
            if isinstance(result, dict):
                found.append(result)
        return (merge_stats(found) if found else None), answered
