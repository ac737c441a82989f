"""A small HTTP/1.1 server protocol on asyncio + httptools, shared by replica and router.

Modelled on uvicorn's httptools protocol: parser callbacks rather than streams,
status lines prebuilt, headers joined into one write, keep-alive with an idle
timer, pipelined requests handled in order, and a graceful shutdown that lets
requests in progress finish.  It depends on the standard library and httptools.

Every request gets an answer: a handler that raises, or a response that cannot be
encoded, is answered 500 in its place (and logged), so the connection's later
pipelined requests still get theirs, in order.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import cast

import httptools

MAX_BODY = 100 * 1024 * 1024  # the v1 front end's payload limit
INTERNAL_ERROR = "internal error while answering the request; see the server log"
log = logging.getLogger("modelport.http")
STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    keep_alive: bool = True
    client: tuple[str, int] | None = None  # the peer's address, where it has one
    # Called if the client disconnects while this request is handled.  The handler is
    # not cancelled: work in progress (a replica slot, a run() call) ends on its own.
    on_disconnect: Callable[[], None] | None = None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n".encode()


class _Clock:
    """The Date header, formatted at most once a second."""

    second = -1
    value = b""

    @classmethod
    def date(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return cls.value


def encode_response(response: Response, keep_alive: bool) -> bytes:
    parts = [status_line(response.status), _Clock.date()]
    for name, value in response.headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"content-length: " + str(len(response.body)).encode() + b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(response.body)
    return b"".join(parts)


class ServerState:
    """What all connections of one server share: the open ones, and shutdown."""

    def __init__(
        self,
        handler: Handler,
        max_body: int = MAX_BODY,
        idle_timeout_s: float = 75.0,
        error_body: Callable[[int, str], Response] | None = None,
        internal_error_text: str = INTERNAL_ERROR,
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.idle_timeout_s = idle_timeout_s
        self.error_body = error_body or (lambda status, text: Response(status, text.encode()))
        self.internal_error_text = internal_error_text
        self.connections: set[HttpProtocol] = set()
        self.closing = False

    def begin_shutdown(self) -> None:
        self.closing = True
        for conn in list(self.connections):
            conn.close_if_idle()

    async def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self.connections


class HttpProtocol(asyncio.Protocol):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.current: Request | None = None
        self.client: tuple[str, int] | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._refused = False
        self._deferred: Response | None = None  # a refusal waiting for the response in progress

    # -- asyncio callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = peer[:2] if isinstance(peer, tuple) else None
        self.state.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._cancel_idle_timer()
        self.transport = None
        self.pending.clear()
        current = self.current
        if current is not None and current.on_disconnect is not None:
            current.on_disconnect()

    def data_received(self, data: bytes) -> None:
        self._cancel_idle_timer()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {exc}")

    # -- parser callbacks ---------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.state.max_body:
                self._refuse(413, f"the request body is larger than {self.state.max_body} bytes")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.state.max_body:
            self._refuse(413, f"the request body is larger than {self.state.max_body} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        url = httptools.parse_url(self._url)
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=url.path.decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self.parser.should_keep_alive(),
            client=self.client,
        )
        self.pending.append(request)
        if self.task is None:
            self.task = self.loop.create_task(self._serve())

    # -- serving ------------------------------------------------------------------
    async def _serve(self) -> None:
        while self.pending and self.transport is not None:
            request = self.current = self.pending.popleft()
            try:
                response = await self.state.handler(request)
            except Exception:
                log.exception("answering %s %s raised; answered 500", request.method, request.path)
                response = self._internal_error()
            self.current = None
            keep_alive = request.keep_alive and not self.state.closing
            if self.transport is None:
                return
            self.transport.write(self._encode(request, response, keep_alive))
            if not keep_alive:
                self.transport.close()
                return
        self.task = None
        if self._deferred is not None and self.transport is not None:
            self.transport.write(encode_response(self._deferred, keep_alive=False))
            self.transport.close()
            return
        if self.state.closing:
            self.close_if_idle()
        else:
            self._arm_idle_timer()

    def _encode(self, request: Request, response: Response, keep_alive: bool) -> bytes:
        try:
            return encode_response(response, keep_alive)
        except Exception as exc:
            log.error(
                "the response to %s %s cannot be encoded (%s: %s); answered 500",
                request.method,
                request.path,
                type(exc).__name__,
                exc,
            )
            return encode_response(self._internal_error(), keep_alive)

    def _internal_error(self) -> Response:
        return self.state.error_body(500, self.state.internal_error_text)

    def close_if_idle(self) -> None:
        if self.task is None and not self.pending and self.transport is not None:
            self.transport.close()

    def _refuse(self, status: int, text: str) -> None:
        """Answer ``status`` and close; after the response in progress, if there is one."""
        self._refused = True
        response = self.state.error_body(status, text)
        if self.task is not None:
            self._deferred = response
        elif self.transport is not None:
            self.transport.write(encode_response(response, keep_alive=False))
            self.transport.close()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self.idle_timer = self.loop.call_later(self.state.idle_timeout_s, self.close_if_idle)

    def _cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
