"""Keep-alive HTTP/1.1 connections to replicas, parsed with httptools.

A request's completion can run a callback synchronously, inside the parser's
callback: the router uses it to free the replica's slot and start the next queued
request on the same connection at once, so a one-at-a-time replica does not idle
while the router's tasks take turns.  The callback gets the request's service time
(from when the replica could start on it to its answer).

A connection may carry a second request behind the one the replica executes
(HTTP/1.1 pipelining, see ``pipelining.py``): answers come back in order, and a
connection given up (a timeout) fails what was queued behind on it with
:class:`PipelineBroken`, never a request on another connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

MAX_IDLE = 64


class ConnectFailed(Exception):
    """No connection could be opened: the request never reached the replica."""


class UpstreamClosed(Exception):
    """The replica closed the connection before a whole response arrived."""


class PipelineBroken(UpstreamClosed):
    """The connection ended while the request was queued behind another on it: the
    replica never started it.  ``timed_out``: the one ahead of it was given up."""

    def __init__(self, text: str, timed_out: bool) -> None:
        super().__init__(text)
        self.timed_out = timed_out


Done = Callable[[float], None]  # called with the service time, in seconds


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    keep_alive: bool = True


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, address: tuple[str, int]) -> None:
        self.pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # Requests written and not yet answered, oldest first: (future, callback).
        self.pending: deque[tuple[asyncio.Future[UpstreamResponse], Done | None]] = deque()
        self.since = 0.0  # when the replica could start on the oldest pending request
        self.response: UpstreamResponse | None = None
        self.body: list[bytes] = []
        self.closed = False
        self.given_up = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.settled(self)
        first = True
        while self.pending:
            waiter, _ = self.pending.popleft()
            if not waiter.done():
                if first:
                    waiter.set_exception(UpstreamClosed("the replica closed the connection"))
                elif self.given_up:
                    text = "queued behind a request that timed out"
                    waiter.set_exception(PipelineBroken(text, timed_out=True))
                else:
                    text = "the replica closed the connection before starting it"
                    waiter.set_exception(PipelineBroken(text, timed_out=False))
            first = False

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            while self.pending:
                waiter, _ = self.pending.popleft()
                if not waiter.done():
                    waiter.set_exception(UpstreamClosed(f"bad response from the replica: {exc}"))
            self.close()

    def on_message_begin(self) -> None:
        self.response = UpstreamResponse(0)
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or not self.pending:
            return
        waiter, done = self.pending.popleft()
        now = time.monotonic()
        service_s, self.since = now - self.since, now  # the next one starts now
        response.body = b"".join(self.body)
        response.keep_alive = self.parser.should_keep_alive()
        if not response.keep_alive or self.closed:
            # The replica said it reads nothing more here: what waits behind never ran.
            while self.pending:
                behind, _ = self.pending.popleft()
                if not behind.done():
                    text = "the replica closed the connection before starting it"
                    behind.set_exception(PipelineBroken(text, timed_out=False))
            self.close()
        elif not self.pending:
            self.pool.put(self)  # idle before the callback, so it can be reused at once
        if waiter.done():  # given up: the connection is closing
            return
        waiter.set_result(response)
        if done is not None:
            done(service_s)

    def begin(self, data: bytes, on_complete: Done | None) -> asyncio.Future[UpstreamResponse]:
        """Write one request; the future resolves with its response."""
        assert self.transport is not None
        waiter: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
        waiter.add_done_callback(self._given_up)
        if not self.pending:
            self.since = time.monotonic()
            self.pool.busy(self)
        self.pending.append((waiter, on_complete))
        self.transport.write(data)
        return waiter

    def _given_up(self, waiter: asyncio.Future[UpstreamResponse]) -> None:
        """Cancelled (a timeout): a late answer must never reach the next request."""
        if waiter.cancelled() and not self.closed:
            self.given_up = True
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle connections per replica address; a connection serves one request at a time.

    A replica is known by its TCP address; where the route table also names a Unix
    socket for it (a replica on this machine), new connections go there instead.
    """

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self.paths: dict[tuple[str, int], str] = {}
        # Connections with requests outstanding, per address: where a request may be
        # pipelined.  As many as the replica's slots, so a scan is short.
        self.active: dict[tuple[str, int], set[UpstreamConnection]] = {}

    def busy(self, conn: UpstreamConnection) -> None:
        self.active.setdefault(conn.address, set()).add(conn)

    def settled(self, conn: UpstreamConnection) -> None:
        """No longer busy: answered everything, or closed."""
        active = self.active.get(conn.address)
        if active is not None:
            active.discard(conn)

    def pipelinable(self, host: str, port: int, started_after: float) -> UpstreamConnection | None:
        """A connection whose one request began after ``started_after`` (so it is not
        slow already) and has none queued behind it."""
        for conn in self.active.get((host, port), ()):
            if len(conn.pending) == 1 and conn.since > started_after and not conn.closed:
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        self.settled(conn)
        idle = self.idle.setdefault(conn.address, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    def start_now(
        self, host: str, port: int, data: bytes, on_complete: Done | None
    ) -> asyncio.Future[UpstreamResponse] | None:
        """Begin on an idle connection if there is one (no await: usable in callbacks)."""
        idle = self.idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn.begin(data, on_complete)
        return None

    async def start(
        self, host: str, port: int, data: bytes, on_complete: Done | None
    ) -> asyncio.Future[UpstreamResponse]:
        started = self.start_now(host, port, data, on_complete)
        if started is not None:
            return started
        loop = asyncio.get_running_loop()
        address = (host, port)
        path = self.paths.get(address)
        try:
            if path is not None:
                _, conn = await loop.create_unix_connection(
                    lambda: UpstreamConnection(self, address), path
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, address), host, port
                )
        except OSError as exc:
            raise ConnectFailed(str(exc)) from exc
        return conn.begin(data, on_complete)

    async def request(self, host: str, port: int, data: bytes) -> UpstreamResponse:
        """One request and its response (no completion callback)."""
        future = await self.start(host, port, data, None)
        return await future

    def forget(self, keep: set[tuple[str, int]]) -> None:
        """Close idle connections to replicas no longer in the table."""
        for address in list(self.idle):
            if address not in keep:
                for conn in self.idle.pop(address):
                    conn.close()
        for address in list(self.active):
            if address not in keep:
                del self.active[address]  # their requests end as they would have
