"""What one client may hold of the shared HTTP server: head size, deadlines, connections,
and a precheck that answers before the body is read."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from modelport.httpserver import Limits, Request, Response, ServerState
from tests.integration.test_httpserver import exchange, serving_state, until

HEAD = b"POST /x HTTP/1.1\r\nhost: x\r\n"


async def echo(request: Request) -> Response:
    text = f"{request.path} {len(request.body)} prechecked={request.prechecked}"
    return Response(200, text.encode())


def refuse_no(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Response | None:
    return Response(401, b"no", [(b"x-why", b"path")]) if path == "/no" else None


@asynccontextmanager
async def serving(limits: Limits, precheck: bool = False) -> AsyncIterator[tuple[int, ServerState]]:
    state = ServerState(echo, limits=limits, precheck=refuse_no if precheck else None)
    async with serving_state(state) as found:
        yield found


# Raw sockets: a server that closes with a refused body unread resets the connection,
# and asyncio's streams then raise instead of handing over the answer that came first.
async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def send(sock: socket.socket, data: bytes) -> bool:
    """False once the server has closed the connection."""
    try:
        await asyncio.get_running_loop().sock_sendall(sock, data)
    except OSError:
        return False
    return True


async def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (an error if it does not within 5 s)."""
    return (await read_until_closed(sock))[0]


async def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """What came, and whether the connection ended in a reset (rather than a close)."""
    received = b""
    while True:
        try:
            chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), 5)
        except ConnectionResetError:
            sock.close()
            return received, True
        if not chunk:
            sock.close()
            return received, False
        received += chunk


def test_a_precheck_answer_goes_out_before_the_body_and_the_connection_closes() -> None:
    async def go() -> tuple[bytes, bytes]:
        async with serving(Limits(), precheck=True) as (port, state):
            sock = await connect(port)
            await send(sock, b"POST /no HTTP/1.1\r\nhost: x\r\ncontent-length: 50000000\r\n\r\n")
            await send(sock, b"z" * 65536)  # of 50 MB declared
            refused = await read_all(sock)
            await until(lambda: not state.connections)
            passed = await exchange(
                port, HEAD + b"content-length: 2\r\n\r\nok", lambda r: r.endswith(b"True")
            )
            return refused, passed

    refused, passed = asyncio.run(go())
    assert refused.startswith(b"HTTP/1.1 401") and refused.endswith(b"\r\n\r\nno")
    assert b"x-why: path\r\n" in refused and b"connection: close\r\n" in refused
    assert passed.endswith(b"/x 2 prechecked=True")  # let through, and the handler told so


def test_heads_over_the_limits_get_431() -> None:
    async def go() -> list[bytes]:
        async with serving(Limits(max_header_bytes=16384, max_headers=100)) as (port, _):
            one_big = HEAD + b"x-big: " + b"a" * 20480 + b"\r\n\r\n"
            many = HEAD + b"".join(b"x-%d: v\r\n" % i for i in range(150)) + b"\r\n"
            just_fits = HEAD + b"".join(b"x-%d: v\r\n" % i for i in range(90)) + b"\r\n"
            answers = [await exchange(port, data, lambda r: False) for data in (one_big, many)]
            answers.append(await exchange(port, just_fits, lambda r: r.endswith(b"False")))
            # A head that never ends, sent in pieces: refused once it passes the limit.
            sock = await connect(port)
            sent = await send(sock, HEAD + b"x-endless: ")
            for _ in range(64):
                sent = sent and await send(sock, b"a" * 1024)
            answers.append(await read_all(sock))
            return answers

    one_big, many, fits, endless = asyncio.run(go())
    assert one_big.startswith(b"HTTP/1.1 431") and b"16384 bytes" in one_big
    assert many.startswith(b"HTTP/1.1 431") and b"more than 100 headers" in many
    assert fits.startswith(b"HTTP/1.1 200")
    assert endless.startswith(b"HTTP/1.1 431") and b"connection: close" in endless


def test_a_head_past_its_deadline_and_a_stalled_body_get_408() -> None:
    async def go() -> tuple[bytes, bytes]:
        limits = Limits(header_timeout_s=0.2, body_idle_timeout_s=0.2)
        async with serving(limits) as (port, _):
            sock = await connect(port)
            await send(sock, b"POST /x HTTP/1.1\r\nhost: ")  # and nothing more
            stalled_head = await read_all(sock)
            sock = await connect(port)
            await send(sock, HEAD + b"content-length: 10\r\n\r\nabc")
            stalled_body = await read_all(sock)
            return stalled_head, stalled_body

    head, body = asyncio.run(go())
    assert head.startswith(b"HTTP/1.1 408") and b"headers did not arrive within 0.2 s" in head
    assert body.startswith(b"HTTP/1.1 408") and b"stopped arriving for 0.2 s" in body


def test_a_slow_but_steady_body_is_served() -> None:
    async def go() -> bytes:
        async with serving(Limits(body_idle_timeout_s=0.3)) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"content-length: 8\r\n\r\n")
            for _ in range(8):  # 0.8 s in all, never idle 0.3 s: a slow client, not a stall
                await asyncio.sleep(0.1)
                writer.write(b"b")
            answer = await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
            return answer

    assert asyncio.run(go()).endswith(b"/x 8 prechecked=False")


def test_connections_over_the_cap_get_503_and_are_closed() -> None:
    async def go() -> tuple[bytes, bytes]:
        async with serving(Limits(max_connections=2)) as (port, state):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await until(lambda: len(state.connections) == 2)
            over = await read_all(await connect(port))
            held[0][1].close()
            await until(lambda: len(state.connections) == 1)
            again = await exchange(
                port, HEAD + b"content-length: 0\r\n\r\n", lambda r: r.endswith(b"False")
            )
            held[1][1].close()
            return over, again

    over, again = asyncio.run(go())
    assert over.startswith(b"HTTP/1.1 503") and b"too many open connections" in over
    assert b"retry-after: 1\r\n" in over and b"connection: close\r\n" in over
    assert again.startswith(b"HTTP/1.1 200")


def test_a_refused_small_body_is_read_and_dropped_so_the_client_gets_the_answer() -> None:
    head = b"POST /no HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"

    async def go() -> tuple[bool, tuple[bytes, bool], bytes]:
        async with serving(Limits(header_timeout_s=0.3), precheck=True) as (port, _):
            # As most clients do: the whole body (3 MiB) first, then read.
            sock = await connect(port)
            whole = await send(sock, head % 3145728 + b"z" * 3145728)
            answered = await read_until_closed(sock)
            # A refused body that stalls is cut off at the header deadline.
            sock = await connect(port)
            await send(sock, head % 1000 + b"z" * 10)
            stalled = await read_all(sock)
            return whole, answered, stalled

    whole, answered, stalled = asyncio.run(go())
    assert whole and answered[0].startswith(b"HTTP/1.1 401") and answered[0].endswith(b"no")
    assert not answered[1]  # a close, not a reset: the body was read to its end
    assert stalled.startswith(b"HTTP/1.1 401")  # then closed, within read_all's 5 s
