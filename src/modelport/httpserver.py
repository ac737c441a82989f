"""A small HTTP/1.1 server protocol on asyncio + httptools, shared by replica and router.

Modelled on uvicorn's httptools protocol: parser callbacks rather than streams,
status lines prebuilt, headers joined into one write, keep-alive with an idle
timer, pipelined requests handled in order, and a graceful shutdown that lets
requests in progress finish.  It depends on the standard library and httptools.

Every request gets an answer: a handler that raises, or a response that cannot be
encoded, is answered 500 in its place (and logged), so the connection's later
pipelined requests still get theirs, in order.

A client costs little before it has shown it may be served (``Limits``): a
request's head must be complete within ``header_timeout_s`` of its first byte and
stay under ``max_header_bytes`` and ``max_headers`` (else 408 or 431); a body that
stops arriving for ``body_idle_timeout_s`` gets 408; connections over
``max_connections`` get a 503 at once.  A ``precheck`` sees each request's method,
path and headers as soon as they are in and may answer it there (a wrong key, say):
the body is then never read and the connection closes.  After a large body the
process gives freed memory back to the system (glibc ``malloc_trim``).
"""

from __future__ import annotations

import asyncio
import ctypes
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
HEADER_TIMEOUT_S = 10.0  # from a request's first byte until its headers are complete
BODY_IDLE_TIMEOUT_S = 30.0  # the longest a body may pause between bytes
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
MAX_HEADERS = 100
MAX_CONNECTIONS = 10_000  # per process (a router worker, a replica)
# A precheck's refusal of a body up to this size reads it and drops it before closing:
# most clients send their whole body before they read, and would otherwise get a
# reset instead of the answer.  A larger one is not read: the connection closes.
DRAIN_BYTES = 4 * 1024 * 1024
TRIM_AFTER = 1024 * 1024  # a body above this many bytes gives memory back when done
TRIM_INTERVAL_S = 1.0  # malloc_trim walks the whole heap: at most once a second
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
    # The server's precheck let it through: the handler need not check it again.
    prechecked: bool = False


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]
# (method, path, headers) once the headers are in: a Response to send at once (the
# body is not read, the connection closes), or None to read the body and handle it.
Precheck = Callable[[str, str, list[tuple[bytes, bytes]]], Response | None]


@dataclass(frozen=True)
class Limits:
    """What one client may hold of a server; plain numbers, so a process can pass them on."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S
    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    max_connections: int | None = MAX_CONNECTIONS  # None: no cap
    drain_bytes: int = DRAIN_BYTES


class _Stop(Exception):
    """Raised in a parser callback after a refusal: the parser reads no further."""


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast(Callable[[int], int], ctypes.CDLL(None).malloc_trim)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


class _Trimmer:
    """Gives freed heap pages back to the system, at most once per ``TRIM_INTERVAL_S``.

    A large body is read in many chunks that glibc keeps on its heap once freed, so a
    process's RSS would stay at its peak; a request asking within the interval gets
    one trim at its end instead."""

    trim = _load_malloc_trim()
    last = -TRIM_INTERVAL_S
    pending: asyncio.TimerHandle | None = None

    @classmethod
    def soon(cls, loop: asyncio.AbstractEventLoop) -> None:
        if cls.trim is None or cls.pending is not None:
            return
        wait = max(0.0, cls.last + TRIM_INTERVAL_S - time.monotonic())
        # Later, not now: the caller still holds the body it is about to drop.
        cls.pending = loop.call_later(wait, cls._run)

    @classmethod
    def _run(cls) -> None:
        cls.pending = None
        cls.last = time.monotonic()
        if cls.trim is not None:
            cls.trim(0)


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
        limits: Limits = Limits(),
        precheck: Precheck | None = None,
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.idle_timeout_s = idle_timeout_s
        self.limits = limits
        self.precheck = precheck
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
        self.limits = state.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self._idle_from: float | None = None  # None while a request arrives or is served
        self.deadline: asyncio.TimerHandle | None = None  # the head's, or the body's idle one
        self.current: Request | None = None
        self.client: tuple[str, int] | None = None
        self._url = b""
        self._method = ""
        self._path = ""
        self._query = ""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._head_size = 0  # the request line and headers parsed so far
        self._head_seen = 0  # bytes read of a head still incomplete
        self._completed = False  # a request ended in the read being parsed
        self._in_head = False
        self._in_body = False
        self._last_body = 0.0
        self._prechecked = False
        self._refused = False
        self._draining = False  # refused: the rest of a small body is read and dropped
        self._deferred: Response | None = None  # a refusal waiting for the response in progress

    # -- asyncio callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        cap = self.limits.max_connections
        if cap is not None and len(self.state.connections) >= cap:
            self._turn_away()
            return
        peer = transport.get_extra_info("peername")
        self.client = peer[:2] if isinstance(peer, tuple) else None
        self.state.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._cancel_idle_timer()
        self._cancel_deadline()
        self.transport = None
        self.pending.clear()
        if self._size > TRIM_AFTER and self._body:  # a large body cut short
            self._body = []
            _Trimmer.soon(self.loop)
        current = self.current
        if current is not None and current.on_disconnect is not None:
            current.on_disconnect()

    def data_received(self, data: bytes) -> None:
        if self._refused and not self._draining:
            return  # answered and closing: the rest is not read
        self._idle_from = None
        self._completed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {exc}")
        if self._refused:
            return
        # Most requests arrive whole in one read: no timer is armed for them.
        if self._in_head:
            if self.deadline is None:  # this read brought the head's first byte
                self.deadline = self.loop.call_later(
                    self.limits.header_timeout_s, self._head_timeout
                )
            # httptools holds an unfinished header itself: bound what it may hold.  A
            # read that ended no request is all head (one that did is not counted).
            if not self._completed:
                self._head_seen += len(data)
                if self._head_seen > self.limits.max_header_bytes:
                    self._refuse(431, self._head_too_large())
        elif self._in_body:
            self._last_body = self.loop.time()
            if self.deadline is None:
                self.deadline = self.loop.call_later(
                    self.limits.body_idle_timeout_s, self._body_idle
                )

    # -- parser callbacks ---------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._head_size = 0
        self._head_seen = 0
        self._in_head = True
        self._prechecked = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_header_bytes:
            self._refuse(431, self._head_too_large())
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_size > self.limits.max_header_bytes:
            self._refuse(431, self._head_too_large())
            raise _Stop
        if len(self._headers) > self.limits.max_headers:
            self._refuse(431, f"the request has more than {self.limits.max_headers} headers")
            raise _Stop

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body = False, True
        self._cancel_deadline()
        url = httptools.parse_url(self._url)
        self._method = self.parser.get_method().decode("ascii")
        self._path = url.path.decode("latin-1")
        self._query = (url.query or b"").decode("latin-1")
        declared = 0  # the body's length; -1: chunked, not known
        for name, value in self._headers:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
                if declared > self.state.max_body:
                    text = f"the request body is larger than {self.state.max_body} bytes"
                    self._refuse(413, text)
                    raise _Stop
            elif name == b"transfer-encoding":
                declared = -1
        precheck = self.state.precheck
        if precheck is not None:
            answer = precheck(self._method, self._path, self._headers)
            if answer is not None:
                if self.task is None and 0 <= declared <= self.limits.drain_bytes:
                    self._drain(answer)
                    return
                self._refuse_with(answer)
                raise _Stop
            self._prechecked = True

    def on_body(self, body: bytes) -> None:
        if self._draining:
            return
        self._size += len(body)
        if self._size > self.state.max_body:
            self._refuse(413, f"the request body is larger than {self.state.max_body} bytes")
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._completed = True
        self._cancel_deadline()
        if self._refused:
            if self._draining and self.transport is not None:
                self.transport.close()
                raise _Stop  # nothing after it is read
            return
        request = Request(
            method=self._method,
            path=self._path,
            query=self._query,
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self.parser.should_keep_alive(),
            client=self.client,
            prechecked=self._prechecked,
        )
        self._body = []
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
            if len(request.body) > TRIM_AFTER:
                _Trimmer.soon(self.loop)
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
        self._refuse_with(self.state.error_body(status, text))

    def _refuse_with(self, response: Response) -> None:
        """Answer ``response`` and close; after the response in progress, if there is one.

        Nothing more is read from the connection: a refused body stays in the kernel's
        buffers until the close, never in this process."""
        self._refused = True
        self._cancel_deadline()
        if self._size > TRIM_AFTER:
            _Trimmer.soon(self.loop)
        self._body = []
        if self.transport is None:
            return
        if self.task is not None:
            self._deferred = response
            self.transport.pause_reading()
        else:
            self.transport.write(encode_response(response, keep_alive=False))
            self.transport.close()

    def _drain(self, response: Response) -> None:
        """Answer at once, then read the rest of the (small) body, drop it and close; the
        body must arrive within the header deadline."""
        self._refused = self._draining = True
        assert self.transport is not None
        self.transport.write(encode_response(response, keep_alive=False))
        self.deadline = self.loop.call_later(self.limits.header_timeout_s, self.transport.close)

    def _turn_away(self) -> None:
        """Over ``max_connections``: a short 503, then close, before anything is read."""
        response = self.state.error_body(503, "the server has too many open connections")
        self._refused = True
        assert self.transport is not None
        headers = [*response.headers, (b"retry-after", b"1")]
        self.transport.write(
            encode_response(Response(503, response.body, headers), keep_alive=False)
        )
        self.transport.close()

    def _head_too_large(self) -> str:
        return f"the request line and headers exceed {self.limits.max_header_bytes} bytes"

    def _head_timeout(self) -> None:
        self.deadline = None
        timeout = self.limits.header_timeout_s
        self._refuse(408, f"the request's headers did not arrive within {timeout:g} s")

    def _body_idle(self) -> None:
        """Fires once per idle period, not per chunk: the body's last read moves it on."""
        timeout = self.limits.body_idle_timeout_s
        left = self._last_body + timeout - self.loop.time()
        if left > 0:
            self.deadline = self.loop.call_later(left, self._body_idle)
            return
        self.deadline = None
        self._refuse(408, f"the request body stopped arriving for {timeout:g} s")

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _arm_idle_timer(self) -> None:
        # One timer per idle period, not per request: when it fires it checks whether the
        # connection has been idle all along (requests in between moved ``_idle_from``).
        self._idle_from = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.state.idle_timeout_s, self._idle_check)

    def _idle_check(self) -> None:
        self.idle_timer = None
        since = self._idle_from
        if since is None:
            return  # busy: armed again when its request is answered
        left = since + self.state.idle_timeout_s - self.loop.time()
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._idle_check)
        else:
            self.close_if_idle()

    def _cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
