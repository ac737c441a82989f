"""The shared HTTP/1.1 server protocol on a real loopback socket."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from modelport.httpserver import INTERNAL_ERROR, HttpProtocol, Request, Response, ServerState


async def echo(request: Request) -> Response:
    if request.path == "/slow":
        await asyncio.sleep(0.05)  # keeps a response in progress while more bytes arrive
    if request.path == "/raise":
        raise RecursionError("maximum recursion depth exceeded")
    if request.path == "/unencodable":
        return Response(200, b"x", [(b"x-fine", "not bytes")])  # type: ignore[list-item]
    if request.path == "/peer":
        return Response(200, repr(request.client).encode())
    body = f"{request.method} {request.path} {request.query} {len(request.body)}".encode()
    return Response(200, body, [(b"content-type", b"text/plain")])


@asynccontextmanager
async def serving(max_body: int = 1000) -> AsyncIterator[tuple[int, ServerState]]:
    async with serving_state(ServerState(echo, max_body=max_body)) as found:
        yield found


@asynccontextmanager
async def serving_state(state: ServerState) -> AsyncIterator[tuple[int, ServerState]]:
    """``state`` on a loopback port, stopped (requests drained) when the block ends."""
    server = await asyncio.get_running_loop().create_server(
        lambda: HttpProtocol(state), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1], state
    finally:
        server.close()
        state.begin_shutdown()
        await state.wait_idle(5)


async def exchange(port: int, data: bytes, until: Callable[[bytes], bool]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    try:
        while not until(received):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
    return received


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async def go() -> bytes:
        async with serving() as (port, _):
            data = (
                b"GET /slow?a=1 HTTP/1.1\r\nhost: x\r\n\r\n"
                b"POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
            )
            return await exchange(port, data, lambda r: r.count(b"HTTP/1.1 200") == 2)

    received = run(go())
    first, second = received.index(b"GET /slow a=1 0"), received.index(b"POST /b  3")
    assert first < second and received.count(b"content-length:") == 2


def test_chunked_body_and_connection_close() -> None:
    async def go() -> bytes:
        async with serving() as (port, _):
            data = (
                b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                b"connection: close\r\n\r\n4\r\nwxyz\r\n2\r\nab\r\n0\r\n\r\n"
            )
            return await exchange(port, data, lambda r: False)  # until the server closes

    received = run(go())
    assert b"POST /c  6" in received and b"connection: close" in received


def test_malformed_and_oversized_requests() -> None:
    async def go() -> tuple[bytes, bytes, bytes]:
        async with serving(max_body=10) as (port, _):
            bad = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n", lambda r: False)
            big = await exchange(
                port, b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\n", lambda r: False
            )
            # an oversized request behind one in progress is refused after that response
            queued = await exchange(
                port,
                b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n"
                b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                b"20\r\n" + b"z" * 32 + b"\r\n",
                lambda r: False,
            )
            return bad, big, queued

    bad, big, queued = run(go())
    assert bad.startswith(b"HTTP/1.1 400")
    assert big.startswith(b"HTTP/1.1 413")
    assert queued.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 413" in queued


def test_a_keep_alive_connection_closes_once_idle_for_the_timeout_and_not_before() -> None:
    """Requests every 0.2 s on one connection outlive a 0.3 s idle timeout; the server
    closes it about 0.3 s after the last answer."""

    async def go() -> tuple[int, float]:
        async with serving_state(ServerState(echo, idle_timeout_s=0.3)) as (port, _):
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answered = 0
            for _ in range(4):
                writer.write(b"GET /again HTTP/1.1\r\nhost: x\r\n\r\n")
                answer = await asyncio.wait_for(reader.readuntil(b"GET /again  0"), 5)
                answered += answer.startswith(b"HTTP/1.1 200")
                last = loop.time()
                await asyncio.sleep(0.2)  # the pace of the client, under the timeout
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            closed_after = loop.time() - last
            writer.close()
            return answered, closed_after

    answered, closed_after = run(go())
    assert answered == 4
    assert 0.25 <= closed_after < 2.0


def test_shutdown_closes_idle_connections_and_waits_for_busy_ones() -> None:
    async def go() -> bool:
        async with serving() as (port, state):
            _, idle = await asyncio.open_connection("127.0.0.1", port)
            reader, busy = await asyncio.open_connection("127.0.0.1", port)
            busy.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            await until(lambda: any(c.task for c in state.connections))
            state.begin_shutdown()
            answer = await asyncio.wait_for(reader.read(65536), 5)
            assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer
            done = await state.wait_idle(5)
            idle.close()
            busy.close()
            return done

    assert run(go())


def test_a_handler_that_raises_gets_a_500_and_pipelining_keeps_its_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def go() -> bytes:
        async with serving() as (port, _):
            data = (
                b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /raise HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /unencodable HTTP/1.1\r\nhost: x\r\n\r\n"
                b"POST /after HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok"
            )
            return await exchange(port, data, lambda r: r.count(b"HTTP/1.1 ") == 4)

    with caplog.at_level(logging.INFO, logger="modelport.http"):
        received = run(go())
    statuses = re.findall(rb"HTTP/1.1 (\d+)", received)
    assert statuses == [b"200", b"500", b"500", b"200"]
    assert received.count(INTERNAL_ERROR.encode()) == 2
    assert received.index(b"GET /slow") < received.index(b"POST /after  2")
    assert b"connection: close" not in received  # the connection stays usable
    messages = [r.getMessage() for r in caplog.records]
    assert any("GET /raise raised; answered 500" in m for m in messages)
    assert any("GET /unencodable cannot be encoded (TypeError" in m for m in messages)


def test_the_handler_sees_the_client_address() -> None:
    async def go() -> bytes:
        async with serving() as (port, _):
            data = b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n"
            return await exchange(port, data, lambda r: r.endswith(b")"))

    assert b"('127.0.0.1', " in run(go())
