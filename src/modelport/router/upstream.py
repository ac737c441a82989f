"""Keep-alive HTTP/1.1 connections to replicas, parsed with httptools."""

from __future__ import annotations

import asyncio
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
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.response: UpstreamResponse | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
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
        response = self.response
        if response is None or self.waiter is None or self.waiter.done():
            return
        response.body = b"".join(self.body)
        response.keep_alive = self.parser.should_keep_alive()
        self.waiter.set_result(response)

    async def send(self, data: bytes) -> UpstreamResponse:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle connections per replica address; a connection serves one request at a time."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}

    async def request(self, host: str, port: int, data: bytes) -> UpstreamResponse:
        conn = await self._connection(host, port)
        try:
            response = await conn.send(data)
        except BaseException:
            conn.close()  # cancelled or failed mid-request: never reuse it
            raise
        if response.keep_alive and not conn.closed:
            idle = self.idle.setdefault((host, port), [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return response
        conn.close()
        return response

    async def _connection(self, host: str, port: int) -> UpstreamConnection:
        idle = self.idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(UpstreamConnection, host, port)
        except OSError as exc:
            raise ConnectFailed(str(exc)) from exc
        return conn

    def forget(self, keep: set[tuple[str, int]]) -> None:
        """Close idle connections to replicas no longer in the table."""
        for address in list(self.idle):
            if address not in keep:
                for conn in self.idle.pop(address):
                    conn.close()
