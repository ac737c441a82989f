"""``python -m modelport.router``: one router worker process.

Its supervisor (``router/supervisor.py``) hands over both sockets
(``MODELPORT_ROUTER_FD`` for scoring, ``MODELPORT_ROUTER_ADMIN_FD`` for the admin
port) with the admin token in ``MODELPORT_ROUTER_TOKEN``.  With
``MODELPORT_ROUTER_TLS_CERT`` and ``MODELPORT_ROUTER_TLS_KEY`` (paths, never the
contents) the scoring port speaks HTTPS (``router/listener.py``), plain HTTP there
getting what ``MODELPORT_ROUTER_PLAIN_HTTP`` says (``off`` or ``redirect``); the
files are reloaded for new connections when they change or on SIGHUP.  A worker starts with the
last route table the control plane wrote for it, if any, so one started again
while the control plane is down serves at once; without a table it answers 503.
``MODELPORT_ROUTER_LIMITS`` (JSON of ``httpserver.Limits``' fields) sets what one
client may hold of the scoring port; ``ROUTER_LIMITS`` are the defaults.
``MODELPORT_ROUTER_REQUEST_LOG`` (a folder) turns on the request log: one JSON
line per scoring request in ``requests-<worker>.jsonl`` there (``router/requestlog.py``),
or, with ``send``, to the control plane through ``MODELPORT_CAPTURE_*`` (a cluster's
router pods).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from modelport.httpserver import HttpProtocol, Limits, ServerState
from modelport.router import capture
from modelport.router.admin import Admin
from modelport.router.listener import TlsListener
from modelport.router.proxy import Proxy, error
from modelport.router.requestlog import from_environment
from modelport.router.table import RouteTable, build_table
from modelport.rowupload import ROUTER, Destination
from modelport.tls import DEFAULT_PLAIN_HTTP, WATCH_INTERVAL_S, CertificateFiles, TlsFileError

log = logging.getLogger("modelport.router")


_CODES = {
    408: "request_timeout",
    413: "payload_too_large",
    431: "headers_too_large",
    500: "internal_error",
    503: "too_many_connections",  # the only 503 the server itself answers
}
IDLE_TIMEOUT_S = 30.0  # a keep-alive connection between requests
ROUTER_LIMITS = Limits()


def _error_body(status: int, text: str):  # type: ignore[no-untyped-def]
    return error(status, _CODES.get(status, "bad_request"), text)


async def serve(
    scoring: socket.socket, admin_sock: socket.socket, token: str, limits: Limits = ROUTER_LIMITS
) -> None:
    loop = asyncio.get_running_loop()
    # A router pod's way to the control plane (its credential leaves the environment).
    ingest = Destination.take(os.environ, ROUTER)
    capture.send_to(ingest)
    requests = from_environment(ingest)
    if requests is not None:
        requests.start()
    proxy = Proxy(token, requests)
    table = _saved_table()
    if table is not None:
        proxy.set_table(table)
        log.info("serving route table revision %d from its file", table.revision)
    state = ServerState(
        proxy.handle,
        error_body=_error_body,
        idle_timeout_s=IDLE_TIMEOUT_S,
        limits=limits,
        precheck=proxy.precheck,
    )
    admin_state = ServerState(Admin(proxy, token).handle, error_body=_error_body)
    files = _certificate_files()
    if files is None:
        server = await loop.create_server(lambda: HttpProtocol(state), sock=scoring)
    else:
        plain = os.environ.get("MODELPORT_ROUTER_PLAIN_HTTP", DEFAULT_PLAIN_HTTP)
        listener = TlsListener(scoring, lambda: HttpProtocol(state), files, plain)
        listener.start()
        watch = loop.create_task(_watch(files))
    admin = await loop.create_server(lambda: HttpProtocol(admin_state), sock=admin_sock)
    loop.add_signal_handler(signal.SIGHUP, lambda: files is not None and files.reload())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if files is None:
        server.close()
    else:
        watch.cancel()
        await listener.close()
    admin.close()
    state.begin_shutdown()
    admin_state.begin_shutdown()
    await state.wait_idle(30.0)
    await asyncio.to_thread(capture.close)  # captured bodies still held are written
    if requests is not None:
        await asyncio.to_thread(requests.close)


def _limits() -> Limits:
    text = os.environ.get("MODELPORT_ROUTER_LIMITS")
    return replace(ROUTER_LIMITS, **json.loads(text)) if text else ROUTER_LIMITS


def _certificate_files() -> CertificateFiles | None:
    cert = os.environ.get("MODELPORT_ROUTER_TLS_CERT")
    key = os.environ.get("MODELPORT_ROUTER_TLS_KEY")
    return CertificateFiles(cert, key) if cert and key else None


async def _watch(files: CertificateFiles) -> None:
    """Replaced certificate files take effect for new connections, without a restart."""
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        files.check()


def _saved_table() -> RouteTable | None:
    folder = os.environ.get("MODELPORT_ROUTER_TABLE_DIR")
    worker = os.environ.get("MODELPORT_ROUTER_WORKER", "0")
    if not folder:
        return None
    try:
        doc = json.loads((Path(folder) / f"table-{worker}.json").read_text())
        return build_table(doc, RouteTable())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("cannot read the saved route table: %s", exc)
        return None


def main() -> int:
    worker = os.environ.get("MODELPORT_ROUTER_WORKER", "0")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s %(name)s[{worker}]: %(message)s",
    )
    token = os.environ.pop("MODELPORT_ROUTER_TOKEN", "")
    if not token:
        print("MODELPORT_ROUTER_TOKEN is not set", file=sys.stderr)
        return 2
    scoring = socket.socket(fileno=int(os.environ["MODELPORT_ROUTER_FD"]))
    admin = socket.socket(fileno=int(os.environ["MODELPORT_ROUTER_ADMIN_FD"]))
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        asyncio.run(serve(scoring, admin, token, _limits()))
    except TlsFileError as exc:
        print(f"cannot serve TLS: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
