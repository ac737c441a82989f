"""Container logs, served to the API server the way a kubelet serves them.

``GET pods/NAME/log`` makes the API server call the pod's Node at its InternalIP and
``daemonEndpoints.kubeletEndpoint.Port``: HTTPS (it does not verify the certificate
when it is given no --kubelet-certificate-authority), path
``/containerLogs/{namespace}/{pod}/{container}`` with ``tailLines``, ``limitBytes``,
``previous`` and ``follow``. All Nodes of the agent share one such server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.kube.containers import read, tail_of
from tests.kube.pods import PodRunner

log = logging.getLogger("node-agent.logs")
FOLLOW_POLL_S = 0.1
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}

Lookup = Callable[[str, str], PodRunner | None]


class LogsServer:
    def __init__(self, lookup: Lookup, port: int, cert: Path, key: Path) -> None:
        self.lookup = lookup
        self.port = port
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.tls.set_alpn_protocols(["http/1.1"])
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.tls, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            await self._answer(method, target, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except (ConnectionError, ssl.SSLError):
            pass
        except Exception:
            log.exception("serving logs")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, method: str, target: str, writer: asyncio.StreamWriter) -> None:
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if method != "GET":
            return await _send(writer, 405, b"only GET\n")
        if parts == ["healthz"]:
            return await _send(writer, 200, b"ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return await _send(writer, 404, b"404 page not found\n")
        _, namespace, pod, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        runner = self.lookup(namespace, pod)
        if runner is None or not runner.has_container(container):
            return await _send(writer, 404, f"container {container} of {pod} not found\n".encode())
        previous = query.get("previous") == "true"
        path = runner.log_file(container, previous)
        if path is None:
            what = "previous terminated" if previous else "started"
            message = f'no {what} container "{container}" in pod "{pod}"\n'
            return await _send(writer, 400, message.encode())
        lines = int(query["tailLines"]) if "tailLines" in query else None
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
        data = read(path)
        body = tail_of(data, lines)[:limit]
        if query.get("follow") != "true" or previous:
            return await _send(writer, 200, body)
        await _stream(writer, path, body, len(data), limit, lambda: runner.running(container))


async def _send(writer: asyncio.StreamWriter, code: int, body: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {code} {REASONS.get(code, '')}\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode("latin-1")
        + body
    )
    await writer.drain()


async def _stream(
    writer: asyncio.StreamWriter,
    path: Path,
    first: bytes,
    offset: int,
    limit: int | None,
    live: Callable[[], bool],
) -> None:
    """Send ``first``, then what the log gains past ``offset`` until its run ends.

    The body has no length: it ends when the connection closes.
    """
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + first
    )
    await writer.drain()
    sent = len(first)
    while limit is None or sent < limit:
        still_running = live()
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        if chunk:
            chunk = chunk[: None if limit is None else limit - sent]
            offset += len(chunk)
            sent += len(chunk)
            writer.write(chunk)
            await writer.drain()
        elif not still_running or writer.is_closing():
            return
        else:
            await asyncio.sleep(FOLLOW_POLL_S)
