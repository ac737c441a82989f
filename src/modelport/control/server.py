"""``modelport up``: open the workspace and serve the management API."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn

from modelport.control.app import create_app
from modelport.control.plane import ControlPlane
from modelport.control.sockets import bind_socket
from modelport.control.workspace import ServerWorkspace, load_or_create_token
from modelport.errors import ConflictError
from modelport.home import config_path, write_private_json
from modelport.process import pid_is_modelport, read_server_pid

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
) -> None:
    """Serve until SIGINT/SIGTERM; writes ``config.json`` once the socket is bound."""
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
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url_host = f"[{url_host}]" if ":" in url_host else url_host
    url = f"http://{url_host}:{sock.getsockname()[1]}"
    # A cluster's pods fetch their files here: an address they can reach.
    api_url = os.environ.get(ADVERTISE_URL_VARIABLE) or url
    plane = ControlPlane(workspace, router_host, router_port, router_workers, api_url)
    settings: dict[str, Any] = {"url": url, "token": token}
    config = uvicorn.Config(
        create_app(workspace, plane),
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

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
            write_private_json(config_path(home), settings)
            log.info("modelport management API on %s, scoring on %s", url, plane.router_url)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        settings.pop("pid", None)
        if "routerPort" in settings:
            write_private_json(config_path(home), settings)
        workspace.close()
        sock.close()
