"""``modelport up``, ``down`` and ``demo``: the local server's life."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from modelport.cli.base import console
from modelport.errors import ModelportError, ServerUnavailableError
from modelport.home import home_dir, open_private
from modelport.httpserver import MAX_CONNECTIONS
from modelport.spec.retention import RETENTION_VARIABLE
from modelport.spec.tokens import (
    DEFAULT_LIFETIME_S,
    LIFETIME_VARIABLE,
    MAX_LIFETIME_S,
    MIN_LIFETIME_S,
)

DEFAULT_PORT = 7370
START_TIMEOUT_S = 60.0


port_option = click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the management API (0: any free port).",
)
router_port_option = click.option(
    "--router-port",
    type=click.IntRange(0, 65535),
    help="Scoring port (default: the last one used, else 7371; 0: any free port).",
)


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@port_option
@click.option(
    "--database-url",
    envvar="MODELPORT_DATABASE_URL",
    help="PostgreSQL URL (default: SQLite in the workspace).",
)
@click.option(
    "--router-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the router takes scoring requests on.",
)
@router_port_option
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Router processes sharing the scoring port (one per spare core at most).",
)
@click.option(
    "--token-lifetime",
    envvar=LIFETIME_VARIABLE,
    default=DEFAULT_LIFETIME_S,
    show_default=True,
    type=click.IntRange(MIN_LIFETIME_S, MAX_LIFETIME_S),
    help="Seconds a scoring token stays valid (token-auth services); renew after half.",
)
@click.option(
    "--max-connections",
    default=MAX_CONNECTIONS,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Open connections each router worker takes; more get a 503 and are closed.",
)
@click.option(
    "--model-data-retention-days",
    envvar=RETENTION_VARIABLE,
    type=click.IntRange(1, 100_000),
    help="Delete collected model data (ModelDataCollector) older than this; default: keep.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve the workspace's Prometheus metrics on this port of --host (0: any free "
    "port); scrape with `modelport metrics token`.",
)
@click.option("--detach", is_flag=True, help="Run in the background; `modelport down` stops it.")
@click.option(
    "--tls",
    "tls_mode",
    type=click.Choice(["self-signed"]),
    help="Serve HTTPS with a certificate from a local CA made (and renewed) in the workspace.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    help="Serve HTTPS with this PEM certificate (chain after it allowed).",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False), help="The PEM private key of --tls-cert."
)
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False),
    help="CA bundle clients on this machine trust (recorded in config.json).",
)
@click.option(
    "--plain-http",
    type=click.Choice(["off", "redirect"]),
    help="Plain HTTP on the scoring port with TLS on: off (a 400 naming the https "
    "address; default) or redirect (308 to https).",
)
@click.option(
    "--api-tls/--no-api-tls",
    default=True,
    show_default=True,
    help="With TLS on, serve the management API over TLS too.",
)
def up(
    host: str,
    port: int,
    database_url: str | None,
    router_host: str,
    router_port: int | None,
    workers: int,
    token_lifetime: int,
    max_connections: int,
    model_data_retention_days: int | None,
    metrics_port: int | None,
    detach: bool,
    tls_mode: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    plain_http: str | None,
    api_tls: bool,
) -> None:
    """Start the modelport server for $MODELPORT_HOME (default ~/.modelport)."""
    # The control plane reads it from the environment (a detached server inherits it).
    os.environ[LIFETIME_VARIABLE] = str(token_lifetime)
    if model_data_retention_days is not None:
        os.environ[RETENTION_VARIABLE] = str(model_data_retention_days)
    home = home_dir()
    flags = {
        "--tls": tls_mode,
        "--tls-cert": tls_cert,
        "--tls-key": tls_key,
        "--tls-ca": tls_ca,
        "--plain-http": plain_http,
    }
    if detach:
        extra = [item for flag, v in flags.items() if v for item in (flag, v)]
        extra += [] if api_tls else ["--no-api-tls"]
        if max_connections != MAX_CONNECTIONS:
            extra += ["--max-connections", str(max_connections)]
        if metrics_port is not None:
            extra += ["--metrics-port", str(metrics_port)]
        url = start_detached(home, host, port, router_port, workers, extra)
        console.print(f"modelport server running at {url} (workspace {home})")
        console.print(f"dashboard: {url}/dashboard/ (sign in with the admin token)")
        _say_ca(home)
        _say_isolation()
        return
    from modelport.control.certificates import default_hosts
    from modelport.control.server import run_server
    from modelport.control.tls import tls_settings
    from modelport.httpserver import Limits

    hosts = default_hosts(host, router_host)
    tls = tls_settings(home, tls_mode, tls_cert, tls_key, tls_ca, plain_http, api_tls, hosts)
    if tls is not None and tls.ca_bundle is not None:
        console.print(f"clients trust the server's certificate with the CA bundle {tls.ca_bundle}")
    _say_isolation()  # a detached server prints it into its log here
    limits = Limits(max_connections=max_connections)
    run_server(
        home,
        host,
        port,
        database_url,
        router_host,
        router_port,
        workers,
        tls,
        hosts,
        limits,
        metrics_port,
    )


def _say_isolation() -> None:
    """What keeps a local service's score.py from the workspace's secrets, if anything."""
    from modelport.control.server import isolation

    console.print(isolation(), soft_wrap=True, markup=False, highlight=False)


def _say_ca(home: Path) -> None:
    from modelport.home import config_path, read_config

    bundle = read_config(config_path(home)).get("caBundle")
    if bundle:
        console.print(f"clients trust the server's certificate with the CA bundle {bundle}")


@click.command("down")
def down() -> None:
    """Stop the server of $MODELPORT_HOME with its router and replicas."""
    from modelport.control.orphans import stop_data_plane
    from modelport.process import pid_is_modelport, read_server_pid, stop_process

    home = home_dir()
    pid = read_server_pid(home)
    if pid is not None and pid_is_modelport(pid):
        stop_process(pid, timeout_s=60.0)
        console.print(f"stopped the modelport server (pid {pid})")
    else:
        console.print(f"no modelport server is running for {home}")
    # A server that was killed leaves its router and replicas serving: stop them too.
    left = stop_data_plane(home)
    if left:
        console.print(f"stopped {left} router and replica supervisor(s) left running")


def server_answers(home: Path) -> bool:
    from modelport.sdk.workspace import Workspace

    try:
        with Workspace.from_config(home) as ws:
            ws.get_details()
    except ModelportError:
        return False
    return True


def start_detached(
    home: Path,
    host: str,
    port: int,
    router_port: int | None = None,
    workers: int = 1,
    extra: list[str] | None = None,
) -> str:
    """Start ``modelport up`` in its own session, wait until it answers, return its url."""
    from modelport.home import config_path, read_config
    from modelport.process import pid_is_modelport, read_server_pid

    pid = read_server_pid(home)
    if pid is not None and pid_is_modelport(pid) and server_answers(home):
        return str(read_config(config_path(home))["url"])
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # it will hold keys and the token
    log_path = home / "logs" / "server.log"
    command = [sys.executable, "-m", "modelport", "up", "--host", host, "--port", str(port)]
    if router_port is not None:
        command += ["--router-port", str(router_port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    command += extra or []
    with open_private(log_path, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "MODELPORT_HOME": str(home)},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise ServerUnavailableError(f"the server exited at start:\n{tail}")
        if read_server_pid(home) == child.pid and server_answers(home):
            return str(read_config(config_path(home))["url"])
        time.sleep(0.1)
    raise ServerUnavailableError(
        f"the server did not answer within {START_TIMEOUT_S:.0f} s", hint=f"see {log_path}"
    )
