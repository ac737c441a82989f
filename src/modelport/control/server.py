"""``modelport up``: open the workspace and serve the management API."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import uvicorn

from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace, load_or_create_token
from modelport.errors import ConflictError
from modelport.home import config_path, write_private_json
from modelport.process import pid_is_modelport, read_server_pid

log = logging.getLogger("modelport.control")


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConflictError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another port with --port (0 picks a free one)",
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(home: Path, host: str, port: int, database_url: str | None) -> None:
    """Serve until SIGINT/SIGTERM; writes ``config.json`` once the socket is bound."""
    pid = read_server_pid(home)
    if pid is not None and pid != os.getpid() and pid_is_modelport(pid):
        raise ConflictError(
            f"a modelport server is already running for {home} (pid {pid})",
            hint="stop it with `modelport down`, or use another MODELPORT_HOME",
        )
    token = load_or_create_token(home)
    workspace = ServerWorkspace.open(home, database_url, token)
    sock = bind_socket(host, port)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url_host = f"[{url_host}]" if ":" in url_host else url_host
    url = f"http://{url_host}:{sock.getsockname()[1]}"
    settings = {"url": url, "token": token, "pid": os.getpid()}
    write_private_json(config_path(home), settings)
    config = uvicorn.Config(
        create_app(workspace),
        log_level="info",
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    log.info("modelport management API on %s (workspace %s)", url, home)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        settings.pop("pid")
        write_private_json(config_path(home), settings)
        workspace.close()
        sock.close()
