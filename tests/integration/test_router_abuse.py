"""Clients without credentials cannot exhaust the router, while a keyed client scores on.

Each test starts a router process with short deadlines and a keyed service on a fake
replica; a keyed client keeps scoring throughout and every one of its requests must
be a 200.  How much the attacks slow that client down is measured in
``benchmarks/abuse.py``, not here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from modelport.control.router_process import RouterProcess
from modelport.control.tls import TlsSettings
from modelport.httpserver import Limits
from modelport.router.proxy import UNAUTHORIZED
from tests.certs import Pki
from tests.conftest import child_pids
from tests.integration.test_httpserver_limits import connect, read_all, send
from tests.integration.test_router import TOKEN, FakeReplica, until
from tests.integration.test_router_tls import handshake, trusting

KEY = "k" * 32
PATH = b"/api/v1/service/svc/score"
DECLARED = 99 * 1024 * 1024
LIMITS = Limits(header_timeout_s=1.0, body_idle_timeout_s=1.0, max_connections=1000)


class KeyedClient:
    """Scores with the key, one request after another, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            while not self._stop.is_set():
                response = await client.post(self.url, json={"id": str(len(self.statuses))})
                self.statuses.append(response.status_code)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[int]:
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.statuses


@asynccontextmanager
async def keyed_router(
    tmp_path: Path, limits: Limits = LIMITS, tls: TlsSettings | None = None
) -> AsyncIterator[tuple[RouterProcess, int, KeyedClient]]:
    fake = FakeReplica()
    await fake.start()
    proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN, limits=limits, tls=tls)
    await proc.start()
    entry = {
        "auth": True,
        "keyDigests": [hashlib.sha256(KEY.encode()).hexdigest()],
        "replicas": [["127.0.0.1", fake.port]],
        "scoringTimeoutMs": 60000,
        "maxConcurrent": 4,
        "maxWaitMs": 5000,
        "maxQueue": 100,
    }
    await proc.publish({"svc": entry})
    client = KeyedClient(f"{proc.url}{PATH.decode()}")
    try:
        yield proc, proc.port, client
    finally:
        await fake.stop()
        await proc.stop()


def worker_rss(proc: RouterProcess) -> int:
    """The router worker's resident memory in bytes (the supervisor's one child)."""
    assert proc.pid is not None
    (worker,) = child_pids(proc.pid)
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def upload_without_key(port: int) -> tuple[bytes, int]:
    """Declares 99 MB and streams it until answered: the answer and the bytes sent by then."""
    sock = await connect(port)
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (PATH, DECLARED)
    answer = asyncio.get_running_loop().create_task(read_all(sock))
    sent = 0
    if await send(sock, head):
        chunk = b"0" * 262144
        while sent < DECLARED and not answer.done() and await send(sock, chunk):
            sent += len(chunk)
    return await answer, sent


async def raw(port: int, data: bytes) -> bytes:
    sock = await connect(port)
    await send(sock, data)
    return await read_all(sock)


def test_uploads_without_a_key_are_refused_unread_and_the_router_keeps_no_memory(
    tmp_path: Path,
) -> None:
    async def go() -> tuple[list[tuple[bytes, int]], int, list[int]]:
        async with keyed_router(tmp_path) as (proc, port, client):
            client.start()
            await until(lambda: len(client.statuses) >= 20)
            baseline = worker_rss(proc)
            uploads = await asyncio.gather(*(upload_without_key(port) for _ in range(4)))
            await until(lambda: worker_rss(proc) < baseline + 20 * 1024 * 1024, timeout_s=20)
            after = worker_rss(proc) - baseline
            return uploads, after, await client.stop()

    uploads, grown, statuses = asyncio.run(go())
    for answer, sent in uploads:
        assert answer.startswith(b"HTTP/1.1 401") and b"connection: close\r\n" in answer
        assert answer.endswith(b"\r\n\r\n" + UNAUTHORIZED.body)
        assert b'www-authenticate: Bearer realm="modelport"\r\n' in answer
        assert sent < DECLARED  # answered and closed long before the client was done
    assert grown < 20 * 1024 * 1024
    assert statuses and set(statuses) == {200}


def test_a_client_that_forgot_its_key_still_reads_the_401_after_a_3_mb_body(
    tmp_path: Path,
) -> None:
    async def go() -> httpx.Response:
        async with keyed_router(tmp_path) as (proc, _, _):
            async with httpx.AsyncClient(timeout=30) as client:  # sends it all, then reads
                return await client.post(f"{proc.url}{PATH.decode()}", content=b"1" * 3_000_000)

    response = asyncio.run(go())
    assert response.status_code == 401 and response.content == UNAUTHORIZED.body


def test_heads_too_large_slowloris_and_stalled_bodies_are_cut_off(tmp_path: Path) -> None:
    keyed = b"authorization: Bearer " + KEY.encode() + b"\r\n"

    async def go() -> tuple[list[bytes], list[bytes], bytes, bytes, list[int]]:
        async with keyed_router(tmp_path) as (_, port, client):
            client.start()
            await until(lambda: len(client.statuses) >= 5)
            request = b"POST %s HTTP/1.1\r\nhost: x\r\n" % PATH
            big = request + b"x-big: " + b"a" * 20480 + b"\r\n\r\n"
            many = request + b"".join(b"x-%d: v\r\n" % i for i in range(150)) + b"\r\n"
            too_large = [await raw(port, big), await raw(port, many)]
            # 100 connections that send part of a head and stall: each closed at 1 s.
            slow = [await connect(port) for _ in range(100)]
            for sock in slow:
                await send(sock, request + b"x-slow: ")
            stalled = await asyncio.gather(*(read_all(sock) for sock in slow))
            body = await raw(port, request + keyed + b"content-length: 100\r\n\r\n{")
            health = await raw(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            return too_large, stalled, body, health, await client.stop()

    too_large, stalled, body, health, statuses = asyncio.run(go())
    assert [a[:12] for a in too_large] == [b"HTTP/1.1 431"] * 2
    assert all(
        json.loads(a.split(b"\r\n\r\n")[1])["error"]["code"] == "headers_too_large"
        for a in too_large
    )
    assert [a[:12] for a in stalled] == [b"HTTP/1.1 408"] * 100  # every one closed after
    assert body.startswith(b"HTTP/1.1 408") and b"stopped arriving for 1 s" in body
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b'\r\n\r\n{"status":"ok"}')
    assert statuses and set(statuses) == {200}


def test_connections_over_the_cap_get_503(tmp_path: Path) -> None:
    async def go() -> tuple[bytes, int, int]:
        async with keyed_router(tmp_path, Limits(max_connections=4)) as (proc, port, _):
            headers = {"Authorization": f"Bearer {KEY}"}
            url = f"{proc.url}{PATH.decode()}"
            async with httpx.AsyncClient(timeout=30, headers=headers) as client:
                assert (await client.post(url, json={})).status_code == 200  # holds 1
                held = [await connect(port) for _ in range(3)]
                await send(held[-1], b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                await read_all(held.pop())  # served, closed: the 3 before it are open
                held.append(await connect(port))
                over = await raw(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                still = (await client.post(url, json={})).status_code  # its kept connection
                for sock in held:
                    sock.close()
                fresh = httpx.AsyncClient(timeout=30, headers=headers)
                async with fresh:
                    again = 0
                    for _ in range(100):  # until the router has seen the 4 close
                        again = (await fresh.post(url, json={})).status_code
                        if again == 200:
                            break
                return over, still, again

    over, still, again = asyncio.run(go())
    assert over.startswith(b"HTTP/1.1 503") and b"too_many_connections" in over
    assert still == 200 and again == 200


def test_large_keyed_uploads_are_served_and_their_memory_given_back(tmp_path: Path) -> None:
    size = 60 * 1024 * 1024
    body = b'{"id": "big", "pad": "' + b"p" * size + b'"}'

    async def go() -> tuple[list[int], int, int]:
        async with keyed_router(tmp_path) as (proc, _, client):
            headers = {"Authorization": f"Bearer {KEY}"}
            url = f"{proc.url}{PATH.decode()}"
            async with httpx.AsyncClient(timeout=60, headers=headers) as big:
                await big.post(url, json={})
                baseline = worker_rss(proc)
                for _ in range(2):  # 4 at once, twice
                    answers = await asyncio.gather(*(big.post(url, content=body) for _ in range(4)))
                    statuses = [a.status_code for a in answers]
                peak = worker_rss(proc) - baseline
            client.start()  # a small request after: the router is still fine
            await until(lambda: len(client.statuses) >= 3)
            await until(lambda: worker_rss(proc) < baseline + 20 * 1024 * 1024, timeout_s=20)
            return statuses + await client.stop(), peak, worker_rss(proc) - baseline

    statuses, peak, grown = asyncio.run(go())
    assert set(statuses) == {200}
    assert grown < 20 * 1024 * 1024, (peak, grown)


def test_over_tls_a_connection_over_the_cap_gets_503_after_its_handshake(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    cert, key, _ = pki.leaf("router-one")
    context = trusting(pki.ca)
    body = b'{"id": "tls"}'
    keyed = (
        b"POST %s HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n"
        b"content-length: %d\r\n\r\n%s" % (PATH, KEY.encode(), len(body), body)
    )

    def clients(port: int) -> tuple[list[bytes], bytes]:
        held = [handshake(port, context) for _ in range(2)]
        answers = []
        for conn in held:  # answered on a kept-alive connection: each one is in
            conn.sendall(keyed)
            answers.append(conn.recv(65536))
        with handshake(port, context) as over:
            over.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            refused = over.recv(65536)
        for conn in held:
            conn.close()
        return answers, refused

    async def go() -> tuple[list[bytes], bytes]:
        tls = TlsSettings(cert, key)
        async with keyed_router(tmp_path / "home", Limits(max_connections=2), tls) as (_, port, _):
            return await asyncio.to_thread(clients, port)

    answers, refused = asyncio.run(go())
    assert [a[:12] for a in answers] == [b"HTTP/1.1 200"] * 2
    assert refused.startswith(b"HTTP/1.1 503") and b"too_many_connections" in refused
