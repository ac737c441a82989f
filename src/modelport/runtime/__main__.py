"""``python -m modelport.runtime``: one replica serving a v1 entry script.

Settings come from the environment, as for the v1 scoring server:
``AML_APP_ROOT``, ``AZUREML_ENTRY_SCRIPT`` (relative to the app root),
``AZUREML_SOURCE_DIRECTORY``, ``AZUREML_MODEL_DIR``, ``SCORING_TIMEOUT_MS``,
``SERVICE_NAME``; plus ``MODELPORT_LISTEN_FD`` (a listening socket handed over by
the compute target) or ``--port``, ``MODELPORT_UNIX_FD`` (a listening Unix socket
besides, where the router on the same machine connects), ``MODELPORT_HEALTH_FD`` or
``MODELPORT_HEALTH_PORT`` (the probes' socket) and ``MODELPORT_WORKERS`` (concurrent run calls).
Exit code 3: the entry script could not be loaded or its ``init()`` failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

INIT_FAILED = 3
log = logging.getLogger("modelport.runtime")


def _settings(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m modelport.runtime")
    parser.add_argument("--entry-script", default=env.get("AZUREML_ENTRY_SCRIPT", "main.py"))
    parser.add_argument("--app-root", default=env.get("AML_APP_ROOT", "."))
    parser.add_argument("--source-dir", default=env.get("AZUREML_SOURCE_DIRECTORY"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(env.get("SERVER_PORT", "5001")))
    parser.add_argument("--workers", type=int, default=int(env.get("MODELPORT_WORKERS", "1")))
    parser.add_argument(
        "--timeout-ms", type=int, default=int(env.get("SCORING_TIMEOUT_MS", "3600000"))
    )
    parser.add_argument("--drain-s", type=float, default=float(env.get("MODELPORT_DRAIN_S", "30")))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from modelport.runtime import output

    output.install()  # after logging took the plain stderr: its lines stay untagged
    settings = _settings(sys.argv[1:] if argv is None else argv)
    from modelport.runtime.gate import take_key

    replica_key = take_key()  # before the entry script is imported: it never sees it
    from modelport.runtime import collection

    collection.take_destination()  # the same for the model-data credential
    root = Path(settings.app_root).resolve()
    os.environ["AML_APP_ROOT"] = str(root)
    os.environ["MODELPORT_REPLICA"] = "1"  # modelport.Model is the replica-side one here
    os.chdir(root)
    from modelport.runtime.counters import COUNTERS
    from modelport.runtime.dataplane import Dataplane
    from modelport.runtime.script import EntryScript, InlineInvoker, Invoker, add_import_folders
    from modelport.runtime.v1paths import describe, provide

    # One run() at a time (the v1 default) runs inline: no thread hand-off per request.
    invoker = InlineInvoker() if settings.workers == 1 else Invoker(settings.workers)
    try:
        source = root / settings.source_dir if settings.source_dir else None
        path = root / settings.entry_script
        add_import_folders(path, source)  # a package of the user's own counts as real
        log.info(describe(*provide()))
        script = EntryScript(path, source)
        service = os.environ.get("SERVICE_NAME", "")
        dataplane = Dataplane(
            script, invoker, settings.timeout_ms, service, _address(settings), replica_key
        )
        log.info("calling init() of %s", settings.entry_script)
        started = time.perf_counter()
        script.call_init()
        COUNTERS.init_seconds = time.perf_counter() - started
    except BaseException:
        log.exception("the entry script failed to load or its init() raised")
        invoker.shutdown()
        return INIT_FAILED
    try:
        _install_loop()
        asyncio.run(_serve(dataplane, settings))
    finally:
        invoker.shutdown()
    return 0


def _address(settings: argparse.Namespace) -> tuple[str, int]:
    """This replica's address as the WSGI environ of @rawhttp requests gives it."""
    fd = os.environ.get("MODELPORT_LISTEN_FD")
    if fd is None:
        return settings.host, settings.port
    with socket.socket(fileno=os.dup(int(fd))) as sock:
        host, port = sock.getsockname()[:2]
    return str(host), int(port)


def _install_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _listening_socket(settings: argparse.Namespace) -> socket.socket:
    fd = os.environ.get("MODELPORT_LISTEN_FD")
    if fd is not None:
        return socket.socket(fileno=int(fd))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    return sock


def _health_socket(settings: argparse.Namespace) -> socket.socket | None:
    """The probes' socket: handed over (``MODELPORT_HEALTH_FD``, the local target) or
    bound beside the scoring one (``MODELPORT_HEALTH_PORT``, a pod)."""
    fd = os.environ.get("MODELPORT_HEALTH_FD")
    if fd is not None:
        return socket.socket(fileno=int(fd))
    port = os.environ.get("MODELPORT_HEALTH_PORT")
    if not port:
        return None
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    return socket.create_server((settings.host, int(port)), family=family)


async def _serve(dataplane: object, settings: argparse.Namespace) -> None:
    from modelport.httpserver import (
        MAX_HEADER_BYTES,
        MAX_HEADERS,
        HttpProtocol,
        Limits,
        ServerState,
    )
    from modelport.runtime.dataplane import INTERNAL, Dataplane, message

    assert isinstance(dataplane, Dataplane)
    # Room above the router's limits for the headers it adds to what it let through.
    limits = Limits(max_header_bytes=2 * MAX_HEADER_BYTES, max_headers=2 * MAX_HEADERS)
    state = ServerState(
        dataplane.handle, error_body=message, internal_error_text=INTERNAL, limits=limits
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(state), sock=_listening_socket(settings))
    servers = [server]
    unix_fd = os.environ.get("MODELPORT_UNIX_FD")
    if unix_fd:  # bound by the control plane: the sandbox need not let us bind a path
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=int(unix_fd))
        servers.append(await loop.create_unix_server(lambda: HttpProtocol(state), sock=unix))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = _health_socket(settings)
    if health is not None:
        from modelport.runtime.counters import COUNTERS
        from modelport.runtime.health import serve_health

        serve_health(health, COUNTERS.body)
    log.info("serving on %s", server.sockets[0].getsockname())
    await stop.wait()
    log.info("draining: finishing requests in progress, then exiting")
    for each in servers:
        each.close()
    state.begin_shutdown()
    if not await state.wait_idle(settings.drain_s):
        log.warning("requests still running after %.0f s; exiting anyway", settings.drain_s)


if __name__ == "__main__":
    sys.exit(main())
