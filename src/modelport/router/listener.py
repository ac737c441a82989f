"""The scoring port with TLS on: HTTPS, and one fixed answer to plain HTTP, on one port.

Each accepted connection waits for its first byte without consuming it (a
``MSG_PEEK``): 0x16 opens a TLS handshake record, so the connection gets TLS with
the certificate in force now and then the router's HTTP protocol; anything else
is plain HTTP and gets the ``plain_http`` answer: ``off`` a 400 that names the
https address, ``redirect`` a 308 to the same path over https on this same port
(308 keeps the method and body).  Either way the connection then closes.  One
port keeps the scoring address a restart or a setting change would otherwise
change, and a wrong scheme is told so instead of a TLS alert it cannot read.

A connection that sends nothing is closed after ``first_byte_timeout_s``, a plain
request's head must arrive within as long, and a handshake has
``handshake_timeout_s``; at most ``MAX_PENDING`` connections may be at one of these
steps at once (more are closed at accept), so stalled handshakes cannot pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
from collections.abc import Callable

from modelport.tls import CertificateFiles

log = logging.getLogger("modelport.router")
TLS_HANDSHAKE = 0x16
MAX_PLAIN_HEAD = 8192
MAX_PENDING = 1024
_HOST = re.compile(rb"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d+)?$")


def plain_answer(mode: str, head: bytes, port: int) -> bytes:
    """The whole response to a plain-HTTP request ``head`` (request line and headers)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    target = parts[1] if len(parts) == 3 and parts[1].startswith(b"/") else b"/"
    host = b"127.0.0.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        match = _HOST.match(value.strip()) if name.strip().lower() == b"host" else None
        if match:
            host = match.group(1)
    location = b"https://" + host + b":" + str(port).encode() + target
    if mode == "redirect":
        status, body = b"308 Permanent Redirect", b""
        extra = b"location: " + location + b"\r\n"
    else:
        text = f"this port speaks HTTPS only: use {location.decode('latin-1')}"
        error = {"error": {"code": "https_required", "message": text}}
        status, body, extra = b"400 Bad Request", json.dumps(error).encode(), b""
        extra += b"content-type: application/json\r\n"
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class PlainHttp(asyncio.Protocol):
    """Reads a plain request's head, answers it as ``mode`` says, closes."""

    def __init__(self, mode: str, port: int, timeout_s: float) -> None:
        self.mode = mode
        self.port = port
        self.timeout_s = timeout_s
        self.head = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timer = asyncio.get_running_loop().call_later(self.timeout_s, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0 and len(self.head) < MAX_PLAIN_HEAD:
            return
        self.transport.write(plain_answer(self.mode, self.head[: max(end, 0)], self.port))
        self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # close


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TlsListener:
    """Accepts on ``sock`` and gives each connection TLS or the plain-HTTP answer."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: Callable[[], asyncio.Protocol],
        files: CertificateFiles,
        plain_http: str,
        first_byte_timeout_s: float = 10.0,
        handshake_timeout_s: float = 10.0,
    ) -> None:
        self.sock = sock
        self.protocol = protocol
        self.files = files
        self.plain_http = plain_http
        self.port = sock.getsockname()[1]
        self.first_byte_timeout_s = first_byte_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self._pending: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sock.setblocking(False)
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except OSError as exc:  # EMFILE and the like: the backlog waits
                log.error("cannot accept a connection: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if len(self._pending) >= MAX_PENDING:
                conn.close()  # the connections before it have not sent their first bytes
                continue
            task = loop.create_task(self._open(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _open(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            first = await self._first_byte(loop, conn)
        except asyncio.CancelledError:
            conn.close()
            raise
        if not first:
            conn.close()
            return
        try:
            if first[0] == TLS_HANDSHAKE:
                await loop.connect_accepted_socket(
                    self.protocol,
                    conn,
                    ssl=self.files.context,
                    ssl_handshake_timeout=self.handshake_timeout_s,
                )
            else:
                mode, port, wait = self.plain_http, self.port, self.first_byte_timeout_s
                await loop.connect_accepted_socket(lambda: PlainHttp(mode, port, wait), conn)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # The transport closed the socket; a failed handshake is the client's.
            if log.isEnabledFor(logging.DEBUG):
                log.debug("TLS handshake failed: %s", exc)

    async def _first_byte(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
        readable: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, _settle, readable)
        try:
            await asyncio.wait_for(readable, self.first_byte_timeout_s)
            return conn.recv(1, socket.MSG_PEEK)
        except (TimeoutError, OSError):
            return b""
        finally:
            loop.remove_reader(fd)

    async def close(self) -> None:
        """Stop accepting; connections still waiting for their first byte are closed."""
        tasks = [t for t in (self._accepting, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sock.close()
