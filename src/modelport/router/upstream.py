"""Keep-alive HTTP/1.1 connections to replicas, parsed with httptools.

A request's completion can run a callback synchronously, inside the parser's
callback: the router uses it to free the replica's slot and start the next queued
request on the same connection at once, so a one-at-a-time replica does not idle
while the router's tasks take turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

MAX_IDLE = 64


class ConnectFailed(Exception):
    """No connection could be opened: the request never reached the replica."""


class UpstreamClosed(Exception):
    """The replica closed the connection before a whole response arrived."""


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
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.on_complete: Callable[[], None] | None = None
        self.response: UpstreamResponse | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_complete = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(UpstreamClosed("the replica closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(UpstreamClosed(f"bad response from the replica: {exc}"))
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
        response, waiter, done = self.response, self.waiter, self.on_complete
        self.waiter = self.on_complete = None
        if response is None or waiter is None or waiter.done():
            return
        response.body = b"".join(self.body)
        response.keep_alive = self.parser.should_keep_alive()
        if response.keep_alive and not self.closed:
            self.pool.put(self)  # idle before the callback, so it can be reused at once
        else:
            self.close()
        waiter.set_result(response)
        if done is not None:
            done()

    def begin(
        self, data: bytes, on_complete: Callable[[], None] | None
    ) -> asyncio.Future[UpstreamResponse]:
        """Write one request; the future resolves with its response."""
        assert self.transport is not None
        waiter: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
        waiter.add_done_callback(self._given_up)
        self.waiter = waiter
        self.on_complete = on_complete
        self.transport.write(data)
        return waiter

    def _given_up(self, waiter: asyncio.Future[UpstreamResponse]) -> None:
        """Cancelled (a timeout): a late answer must never reach the next request."""
        if waiter.cancelled():
            self.close()

    def close(self) -> None:
        self.closed = True
        self.on_complete = None
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

    def put(self, conn: UpstreamConnection) -> None:
        idle = self.idle.setdefault(conn.address, [])
        if len(idle) < MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    def start_now(
        self, host: str, port: int, data: bytes, on_complete: Callable[[], None] | None
    ) -> asyncio.Future[UpstreamResponse] | None:
        """Begin on an idle connection if there is one (no await: usable in callbacks)."""
        idle = self.idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn.begin(data, on_complete)
        return None

    async def start(
        self, host: str, port: int, data: bytes, on_complete: Callable[[], None] | None
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
