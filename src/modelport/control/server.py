"""``modelport up``: open the workspace and serve the management API.

With TLS (``control/tls.py``) the router's scoring port and, unless told
otherwise, the management API serve HTTPS; ``config.json`` then has an https
``url`` and, where the server knows it (``--tls self-signed``, ``--tls-ca``), the
CA bundle its clients on this machine trust (``caBundle``).  Certificate files
are watched: a replaced pair serves new connections, open ones keep theirs; a
self-signed certificate is renewed while the server runs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from modelport.compute.local import sandbox
from modelport.control import certificates
from modelport.control.app import create_app
from modelport.control.plane import ControlPlane
from modelport.control.sockets import bind_socket
from modelport.control.tls import TlsSettings, renew
from modelport.control.workspace import ServerWorkspace, load_or_create_token
from modelport.errors import ConflictError
from modelport.home import config_path, write_private_json
from modelport.httpserver import Limits
from modelport.process import pid_is_modelport, read_server_pid
from modelport.tls import WATCH_INTERVAL_S, CertificateFiles

log = logging.getLogger("modelport.control")
ADVERTISE_URL_VARIABLE = "MODELPORT_ADVERTISE_URL"
DEFAULT_ROUTER_PORT = 7371


def _previous(home: Path) -> dict[str, Any]:
    try:
        data = json.loads(config_path(home).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_server(
    home: Path,
    host: str,
    port: int,
    database_url: str | None,
    router_host: str = "127.0.0.1",
    router_port: int | None = None,
    router_workers: int = 1,
    tls: TlsSettings | None = None,
    hosts: list[str] | None = None,
    router_limits: Limits | None = None,
    metrics_port: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; writes ``config.json`` once the socket is bound.

    ``hosts``: what a self-signed certificate names, checked again while running.
    ``metrics_port``: serve the workspace's metrics there, on ``host`` (None: not at all)."""
    pid = read_server_pid(home)
    if pid is not None and pid != os.getpid() and pid_is_modelport(pid):
        raise ConflictError(
            f"a modelport server is already running for {home} (pid {pid})",
            hint="stop it with `modelport down`, or use another MODELPORT_HOME",
        )
    token = load_or_create_token(home)
    if router_port is None:  # keep the scoring address a restart would otherwise change
        router_port = int(_previous(home).get("routerPort", DEFAULT_ROUTER_PORT))
    workspace = ServerWorkspace.open(home, database_url, token)
    sock = bind_socket(host, port)
    metrics_sock = None
    if metrics_port is not None:
        metrics_sock = bind_socket(host, metrics_port, flag="--metrics-port")
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url_host = f"[{url_host}]" if ":" in url_host else url_host
    api_tls = tls is not None and tls.api
    url = f"{'https' if api_tls else 'http'}://{url_host}:{sock.getsockname()[1]}"
    # A cluster's pods fetch their files here: an address they can reach.
    api_url = os.environ.get(ADVERTISE_URL_VARIABLE) or url
    plane = ControlPlane(
        workspace,
        router_host,
        router_port,
        router_workers,
        api_url,
        tls,
        router_limits,
        metrics_socket=metrics_sock,
    )
    settings: dict[str, Any] = {"url": url, "token": token, "dashboardUrl": f"{url}/dashboard/"}
    if tls is not None and tls.ca_bundle is not None:
        settings["caBundle"] = str(tls.ca_bundle)
    config = uvicorn.Config(
        create_app(workspace, plane),
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    files = CertificateFiles(str(tls.cert), str(tls.key)) if tls is not None and api_tls else None
    if files is not None:
        config.load()
        config.ssl = files.front()  # every handshake takes the certificate in force
    server = uvicorn.Server(config)
    original_startup = server.startup
    upkeep: list[asyncio.Task[None]] = []  # held: the loop keeps only weak references

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets)
        if server.started and plane.router is not None:
            # Clients learn of the server only once it runs its router and services.
            settings.update(
                routerUrl=plane.router_url,
                routerPort=plane.router.port,
                routerAdminUrl=plane.router.admin_url,
                routerAdminUrls=plane.router.admin_urls,
                pid=os.getpid(),
            )
            if plane.metrics is not None:
                settings["metricsUrl"] = plane.metrics.url
            write_private_json(config_path(home), settings)
            log.info("modelport management API on %s, scoring on %s", url, plane.router_url)
            log.info("dashboard on %s/dashboard/ (sign in with the admin token)", url)
            if tls is not None:  # tasks of uvicorn's loop: they end with it
                upkeep.extend(_tls_upkeep(home, tls, files, hosts or []))

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        settings.pop("pid", None)
        if "routerPort" in settings:
            write_private_json(config_path(home), settings)
        workspace.close()
        sock.close()


def isolation() -> str:
    """What keeps a local service's score.py from the workspace's secrets (``up`` says it)."""
    return sandbox.describe()


def _tls_upkeep(
    home: Path, tls: TlsSettings, files: CertificateFiles | None, hosts: list[str]
) -> list[asyncio.Task[None]]:
    """Watch the certificate files for the management API; renew a self-signed one."""
    loop = asyncio.get_running_loop()
    tasks = []
    if files is not None:
        tasks.append(loop.create_task(_every(WATCH_INTERVAL_S, files.check)))
    if tls.self_signed:
        check = functools.partial(renew, home, hosts)
        tasks.append(loop.create_task(_every(certificates.RENEW_CHECK_S, check, thread=True)))
    return tasks


async def _every(seconds: float, action: Callable[[], object], thread: bool = False) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(action) if thread else action()
        except Exception:  # the upkeep goes on; the next round may succeed
            log.exception("TLS upkeep failed")
