"""The router process against fake replicas that record what reaches them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from modelport.control.router_process import RouterProcess
from modelport.httpserver import HttpProtocol, Request, Response, ServerState
from modelport.router.split import buckets, sticky
from tests.conftest import alive, child_pids
from tests.prom import total, value

TOKEN = "r" * 40


class FakeReplica:
    """Answers /score after the body's instruction; counts concurrency and arrivals.

    ``status``, ``extra`` (added to the answer), ``delay`` and ``held`` (every request
    waits for ``release``) make a version that fails, differs, is slow or stuck.
    """

    def __init__(
        self,
        status: int = 200,
        extra: dict[str, Any] | None = None,
        delay: float = 0.0,
        held: bool = False,
    ) -> None:
        self.status, self.extra, self.delay, self.held = status, extra or {}, delay, held
        self.in_flight = 0
        self.peak = 0
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.state = ServerState(self.handle)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: HttpProtocol(self.state), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def start_unix(self, path: Path) -> None:
        """Listen on a Unix socket only, as a local replica serves its router."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: HttpProtocol(self.state), str(path))

    async def handle(self, request: Request) -> Response:
        body = json.loads(request.body or b"{}")
        self.seen.append(body.get("id", ""))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if body.get("sleep") or self.delay:
                await asyncio.sleep(body.get("sleep") or self.delay)
            if body.get("hold") or self.held:
                await self.release.wait()
            if body.get("drop"):
                for conn in list(self.state.connections):
                    assert conn.transport is not None
                    conn.transport.abort()  # as if the replica process died mid-request
        finally:
            self.in_flight -= 1
        return Response(
            self.status,
            json.dumps({"id": body.get("id"), **self.extra}).encode(),
            [(b"content-type", b"application/json")],
        )

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()


@asynccontextmanager
async def router(
    tmp_path: Path, replicas: int, workers: int = 1, **route: Any
) -> AsyncIterator[tuple[RouterProcess, list[FakeReplica], str]]:
    fakes = [FakeReplica() for _ in range(replicas)]
    for fake in fakes:
        await fake.start()
    proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN, workers=workers)
    await proc.start()
    entry = {
        "auth": False,
        "keyDigests": [],
        "replicas": [["127.0.0.1", f.port] for f in fakes],
        "scoringTimeoutMs": 60000,
        "maxConcurrent": 1,
        "maxWaitMs": 500,
        "maxQueue": 100,
        **route,
    }
    await proc.publish({"svc": entry})
    try:
        yield proc, fakes, f"{proc.url}/api/v1/service/svc/score"
    finally:
        for fake in fakes:
            await fake.stop()
        await proc.stop()


async def metrics(admin_url: str) -> str:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        return (await client.get(f"{admin_url}/metrics")).text


def answered(text: str) -> int:
    return int(total(text, "modelport_router_requests_total", code="2xx"))


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_the_cap_is_never_exceeded(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], list[int], list[int]]:
        async with router(tmp_path, 2, maxConcurrent=2, maxWaitMs=10000) as (_, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                calls = [client.post(url, json={"id": str(i), "sleep": 0.05}) for i in range(20)]
                answers = await asyncio.gather(*calls)
            return (
                [r.status_code for r in answers],
                [f.peak for f in fakes],
                [len(f.seen) for f in fakes],
            )

    statuses, peaks, seen = asyncio.run(go())
    assert statuses == [200] * 20
    assert peaks == [2, 2] and sum(seen) == 20


def test_a_replica_with_a_unix_socket_is_reached_there_not_by_tcp(tmp_path: Path) -> None:
    """The table names a TCP port nothing listens on and a Unix socket: the request can
    only be answered through the socket."""

    async def go() -> tuple[list[int], list[str]]:
        folder = tmp_path / "run"
        folder.mkdir(mode=0o700)
        fake = FakeReplica()
        await fake.start_unix(folder / "r.http")
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a TCP connect is refused
        port = closed.getsockname()[1]
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()
        try:
            entry = {
                "auth": False,
                "keyDigests": [],
                "replicas": [["127.0.0.1", port]],
                "unixSockets": {str(port): str(folder / "r.http")},
                "maxConcurrent": 1,
            }
            await proc.publish({"svc": entry})
            url = f"{proc.url}/api/v1/service/svc/score"
            async with httpx.AsyncClient(timeout=30) as client:
                answers = [await client.post(url, json={"id": str(i)}) for i in range(3)]
            return [r.status_code for r in answers], fake.seen
        finally:
            await fake.stop()
            await proc.stop()
            closed.close()

    statuses, seen = asyncio.run(go())
    assert statuses == [200, 200, 200]
    assert seen == ["0", "1", "2"]


def test_a_queued_request_gets_503_at_its_deadline_while_the_replica_is_busy(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, maxWaitMs=150) as (_, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                held = asyncio.create_task(client.post(url, json={"id": "a", "hold": True}))
                await until(lambda: fakes[0].in_flight == 1)
                started = time.monotonic()
                late = await client.post(url, json={"id": "b"})
                waited = time.monotonic() - started
                assert late.status_code == 503 and not held.done()  # the replica is still busy
                assert 0.1 <= waited < 1.5
                body = late.json()["error"]
                assert (
                    body["code"] == "queue_timeout"
                    and body["waitedMs"] >= 140
                    and body["queued"] == 0
                )
                assert late.headers["retry-after"] == "1"
                fakes[0].release.set()
                assert (await held).status_code == 200
                assert fakes[0].seen == ["a"]

    asyncio.run(go())


async def leaving_client(url: str, body: dict[str, Any]) -> asyncio.StreamWriter:
    """Send a request on a raw connection; closing the writer is the client leaving."""
    target = httpx.URL(url)
    _, writer = await asyncio.open_connection(target.host, target.port)
    data = json.dumps(body).encode()
    writer.write(
        f"POST {target.path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(data)}\r\n"
        "content-type: application/json\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    return writer


async def queued(proc: RouterProcess) -> int:
    stats = await proc.stats()
    return int(stats["services"]["svc"]["queued"]) if stats else -1


async def until_queued(proc: RouterProcess, count: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await queued(proc) != count:
        assert time.monotonic() < deadline, f"never {count} queued"
        await asyncio.sleep(0.005)


def test_a_full_queue_refuses_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, maxWaitMs=10000, maxQueue=2) as (proc, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                held = asyncio.create_task(client.post(url, json={"id": "a", "hold": True}))
                await until(lambda: fakes[0].in_flight == 1)
                waiting = []
                for i in "bc":  # one at a time, so their order is known
                    waiting.append(asyncio.create_task(client.post(url, json={"id": i})))
                    await until_queued(proc, len(waiting))
                started = time.monotonic()
                refused = await client.post(url, json={"id": "d"})
                assert refused.status_code == 503 and time.monotonic() - started < 1.0
                error = refused.json()["error"]
                assert (error["code"], error["queued"]) == ("queue_full", 2)
                fakes[0].release.set()
                assert [r.status_code for r in await asyncio.gather(held, *waiting)] == [200] * 3
                assert fakes[0].seen == ["a", "b", "c"]  # first come, first served
                stats = await proc.stats()
                assert stats is not None and stats["services"]["svc"]["queueFull"] == 1

    asyncio.run(go())


def test_a_client_leaving_the_queue_takes_no_slot(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, maxWaitMs=10000) as (proc, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                held = asyncio.create_task(client.post(url, json={"id": "a", "hold": True}))
                await until(lambda: fakes[0].in_flight == 1)
                gone = await leaving_client(url, {"id": "gone"})
                await until_queued(proc, 1)
                gone.close()  # the client disconnects while queued
                await until_queued(proc, 0)
                fakes[0].release.set()
                assert (await held).status_code == 200
                assert (await client.post(url, json={"id": "c"})).status_code == 200
                assert fakes[0].seen == ["a", "c"]

    asyncio.run(go())


def test_a_client_leaving_mid_request_frees_its_slot_when_the_replica_answers(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, maxWaitMs=10000) as (proc, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                gone = await leaving_client(url, {"id": "a", "hold": True})
                await until(lambda: fakes[0].in_flight == 1)
                gone.close()  # the client disconnects while the replica works on it
                waiting = asyncio.create_task(client.post(url, json={"id": "b"}))
                await until_queued(proc, 1)  # the replica is still busy: b must wait
                assert fakes[0].seen == ["a"]
                fakes[0].release.set()
                assert (await waiting).status_code == 200
                assert fakes[0].peak == 1 and fakes[0].seen == ["a", "b"]

    asyncio.run(go())


def test_timeout_is_504_and_frees_the_slot(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, scoringTimeoutMs=200, maxWaitMs=5000) as (_, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                started = time.monotonic()
                slow = await client.post(url, json={"id": "a", "hold": True})
                assert slow.status_code == 504 and 0.15 < time.monotonic() - started < 2
                assert slow.json()["error"]["code"] == "timeout"
                # the slot is free again although the replica still works on "a"
                fast = await client.post(url, json={"id": "b"})
                assert fast.status_code == 200 and fakes[0].seen == ["a", "b"]

    asyncio.run(go())


def test_a_replica_dying_mid_request_is_502_not_a_hang(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 1) as (_, _fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                dropped = await client.post(url, json={"id": "a", "drop": True})
                assert dropped.status_code == 502
                assert dropped.json()["error"]["code"] == "bad_gateway"
                assert (await client.post(url, json={"id": "b"})).status_code == 200

    asyncio.run(go())


def test_an_unreachable_replica_is_retried_on_another(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 1, maxConcurrent=4) as (proc, fakes, url):
            import socket

            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                dead_port = closed.getsockname()[1]  # nothing listens there once closed
            entry = {
                "auth": False,
                "keyDigests": [],
                "maxConcurrent": 4,
                "replicas": [["127.0.0.1", dead_port], ["127.0.0.1", fakes[0].port]],
            }
            await proc.publish({"svc": entry})
            async with httpx.AsyncClient(timeout=30) as client:
                answers = [await client.post(url, json={"id": str(i)}) for i in range(6)]
            assert [r.status_code for r in answers] == [200] * 6
            assert len(fakes[0].seen) == 6

    asyncio.run(go())


def test_metrics_are_prometheus_text_on_the_admin_port(tmp_path: Path) -> None:
    async def go() -> tuple[str, dict[str, Any] | None]:
        async with router(tmp_path, 1) as (proc, _fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                for _ in range(3):
                    await client.post(url, json={"id": "x"})
                await client.put(url)  # 405
            return await metrics(proc.admin_url), await proc.stats()

    text, stats = asyncio.run(go())
    assert stats is not None
    svc = stats["services"]["svc"]
    assert svc["requests"] == {"2xx": 3, "3xx": 0, "4xx": 1, "5xx": 0}
    assert sum(svc["latencyCounts"]) == 4 and (svc["queueFull"], svc["queueTimeouts"]) == (0, 0)
    assert stats["latencyBounds"][0] == 0.001 and stats["latencyBounds"][-1] == 60.0
    assert value(text, "modelport_router_requests_total", service="svc", code="2xx") == 3
    assert value(text, "modelport_router_requests_total", service="svc", code="4xx") == 1
    assert value(text, "modelport_router_request_duration_seconds_count", service="svc") == 4
    assert value(text, "modelport_router_queue_wait_seconds_count", service="svc") == 3
    assert value(text, "modelport_router_replicas_ready", service="svc", version="") == 1


def test_workers_share_the_port_and_never_exceed_a_replicas_cap(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], list[int], list[int]]:
        async with router(tmp_path, 2, workers=2, maxWaitMs=10000) as (proc, fakes, url):
            limits = httpx.Limits(max_keepalive_connections=0)  # a connection per request
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                calls = [client.post(url, json={"id": str(i), "sleep": 0.02}) for i in range(40)]
                answers = await asyncio.gather(*calls)
            per_worker = [answered(await metrics(u)) for u in proc.admin_urls]
            return [r.status_code for r in answers], [f.peak for f in fakes], per_worker

    statuses, peaks, per_worker = asyncio.run(go())
    assert statuses == [200] * 40
    assert peaks == [1, 1]  # each replica's one slot belongs to one worker
    assert sum(per_worker) == 40 and min(per_worker) > 0  # the kernel spread the connections


def test_with_one_slot_and_two_workers_the_other_worker_forwards(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], int, list[str], int]:
        key = "k" * 32
        digest = hashlib.sha256(key.encode()).hexdigest()
        # A wait long enough for 30 requests on one slot, even on a loaded machine.
        async with router(
            tmp_path, 1, workers=2, auth=True, keyDigests=[digest], maxWaitMs=20000
        ) as (
            proc,
            fakes,
            url,
        ):
            limits = httpx.Limits(max_keepalive_connections=0)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:
                calls = [client.post(url, json={"id": str(i), "sleep": 0.01}) for i in range(30)]
                answers = await asyncio.gather(*calls)
                bad = {"Authorization": "Bearer wrong"}
                refused = [await client.post(url, json={}, headers=bad) for _ in range(12)]
            texts = [await metrics(u) for u in proc.admin_urls]
            return (
                [r.status_code for r in answers],
                fakes[0].peak,
                texts,
                {r.status_code for r in refused},
            )

    statuses, peak, (owner, other), refused = asyncio.run(go())
    assert statuses == [200] * 30 and peak == 1  # the one slot is never doubled
    assert answered(owner) == 30  # every request was served by the worker holding the slot
    assert total(other, "modelport_router_forwarded_total") > 0  # the kernel gave the other some
    # A wrong key is refused by whichever worker took it: had the other worker
    # forwarded one, the owner (which trusts forwarded requests) would have served it.
    assert refused == {401}
    assert total(owner, "modelport_router_requests_total", code="4xx") < 12


def test_a_worker_that_dies_is_replaced_on_the_same_port_with_its_table(tmp_path: Path) -> None:
    async def go() -> None:
        async with router(tmp_path, 2, workers=2) as (proc, _fakes, url):
            assert proc.pid is not None
            first = min(child_pids(proc.pid))
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 20
            # Nobody pushes a table now: the new worker reads the one written for it.
            while first in child_pids(proc.pid) or len(child_pids(proc.pid)) < 2:
                assert time.monotonic() < deadline, "the worker was not replaced"
                await asyncio.sleep(0.02)
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                answers = [await client.post(url, json={"id": str(i)}) for i in range(20)]
            assert [r.status_code for r in answers] == [200] * 20
            assert min([answered(await metrics(u)) for u in proc.admin_urls]) > 0

    asyncio.run(go())


def test_a_router_without_a_table_says_it_is_starting(tmp_path: Path) -> None:
    async def go() -> httpx.Response:
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                return await client.post(f"{proc.url}/api/v1/service/svc/score", json={})
        finally:
            await proc.stop()

    answer = asyncio.run(go())
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "starting"


CONTROL_PLANE = """
import asyncio, sys
from pathlib import Path
from modelport.control.router_process import RouterProcess

async def main():
    proc = RouterProcess(Path(sys.argv[1]), "127.0.0.1", 0, sys.argv[2])
    await proc.start()
    entry = {"auth": False, "keyDigests": [], "replicas": [["127.0.0.1", int(sys.argv[3])]]}
    await proc.publish({"svc": entry})
    print(proc.port, proc.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_router_outlives_its_control_plane_and_is_adopted(tmp_path: Path) -> None:
    async def go() -> None:
        fake = FakeReplica()
        await fake.start()
        owner = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CONTROL_PLANE,
            str(tmp_path),
            TOKEN,
            str(fake.port),
            stdout=asyncio.subprocess.PIPE,
        )
        assert owner.stdout is not None
        port, pid = (int(x) for x in (await owner.stdout.readline()).split())
        url = f"http://127.0.0.1:{port}/api/v1/service/svc/score"
        owner.kill()  # the control plane dies; its router must not
        await owner.wait()
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(url, json={"id": "1"})).status_code == 200
            adopter = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
            await adopter.start()
            try:
                assert (adopter.pid, adopter.port) == (pid, port)  # the same process serves
                digest = hashlib.sha256(b"k" * 32).hexdigest()
                entry = {
                    "auth": True,
                    "keyDigests": [digest],
                    "replicas": [["127.0.0.1", fake.port]],
                }
                await adopter.publish({"svc": entry})
                assert (await client.post(url, json={})).status_code == 401
            finally:
                await adopter.stop()
                await fake.stop()
        assert not alive(pid)

    asyncio.run(go())


def test_an_endpoint_splits_exactly_and_a_pinned_version_is_served(tmp_path: Path) -> None:
    """Two versions behind one name at 70/30: 100 requests deal exactly 70 and 30; the
    answer names its version; a pinned version takes every request; an unknown one is
    a 404 naming the versions there are."""

    async def go() -> None:
        a, b = FakeReplica(), FakeReplica()
        await a.start()
        await b.start()
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()

        def entry(fake: FakeReplica) -> dict[str, Any]:
            return {"auth": False, "replicas": [["127.0.0.1", fake.port]], "maxWaitMs": 5000}

        versions = [
            {"name": "blue", "share": 70, "route": "ep:blue"},
            {"name": "green", "share": 30, "route": "ep:green"},
        ]
        await proc.publish(
            {"ep:blue": entry(a), "ep:green": entry(b)}, {"ep": {"versions": versions}}
        )
        url = f"{proc.url}/api/v1/service/ep/score"
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                served = [
                    (await client.post(url, json={"id": str(i)})).headers[
                        "azureml-model-deployment"
                    ]
                    for i in range(100)
                ]
                assert (served.count("blue"), served.count("green")) == (70, 30)
                assert (len(a.seen), len(b.seen)) == (70, 30)
                pin = {"azureml-model-deployment": "green"}
                pinned = [await client.post(url, json={}, headers=pin) for _ in range(5)]
                assert {r.headers["azureml-model-deployment"] for r in pinned} == {"green"}
                assert len(b.seen) == 35
                wrong = await client.post(url, json={}, headers={"azureml-model-deployment": "red"})
                assert wrong.status_code == 404
                assert "has no version 'red' (it has blue, green)" in wrong.text
        finally:
            await a.stop()
            await b.stop()
            await proc.stop()

    asyncio.run(go())


def test_a_hidden_route_is_reached_only_through_its_endpoint(tmp_path: Path) -> None:
    """A version's own route answers 404 as an unknown service would; through its
    endpoint it serves, on either of two workers (the one without the slot forwards
    to the one holding it, by the hidden route's name)."""

    async def go() -> None:
        async with router(tmp_path, 1, workers=2, maxWaitMs=20000) as (proc, fakes, _url):
            hidden = {
                "auth": False,
                "replicas": [["127.0.0.1", fakes[0].port]],
                "maxWaitMs": 20000,
                "hidden": True,
            }
            versions = [{"name": "blue", "share": 100, "route": "ep.blue"}]
            await proc.publish({"ep.blue": hidden}, {"ep": {"versions": versions}})
            base = f"{proc.url}/api/v1/service"
            limits = httpx.Limits(max_keepalive_connections=0)  # a connection per request
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                direct = await client.post(f"{base}/ep.blue/score", json={"id": "x"})
                unknown = await client.post(f"{base}/nothing/score", json={"id": "x"})
                swagger = await client.get(f"{base}/ep.blue/swagger.json")
                calls = [client.post(f"{base}/ep/score", json={"id": str(i)}) for i in range(30)]
                answers = await asyncio.gather(*calls)
            texts = [await metrics(u) for u in proc.admin_urls]
            stats = await proc.stats()
        assert direct.status_code == unknown.status_code == swagger.status_code == 404
        assert direct.json() == {
            "error": {"code": "not_found", "message": "service 'ep.blue' not found"}
        }
        assert unknown.json()["error"]["message"] == "service 'nothing' not found"
        assert [r.status_code for r in answers] == [200] * 30
        assert fakes[0].seen.count("x") == 0 and len(fakes[0].seen) == 30
        forwarded = [
            total(t, "modelport_router_forwarded_total", service="ep", version="blue")
            for t in texts
        ]
        assert sum(forwarded) > 0  # the worker without the slot forwarded some
        # Both workers' counters, added up: each request counted once, where it was served.
        assert stats is not None
        version = stats["services"]["ep.blue"]
        assert version["requests"] == {"2xx": 30, "3xx": 0, "4xx": 0, "5xx": 0}
        assert len(version["latencyCounts"]) == len(stats["latencyBounds"]) + 1
        assert sum(version["latencyCounts"]) == 30 and version["latencySum"] > 0

    asyncio.run(go())


def test_sticky_keys_keep_their_version_and_a_change_of_shares_moves_only_what_it_must(
    tmp_path: Path,
) -> None:
    """90/10 with a sticky header: 200 requests from 50 keys, each key always on one
    version; at 80/20 the keys of the growing version stay and about a tenth of the
    keys move, all from the shrinking version to the growing one.  A cookie does the
    same for an endpoint that names one; a request without its key gets the split."""

    async def go() -> None:
        a, b = FakeReplica(), FakeReplica()
        await a.start()
        await b.start()
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()

        def entry(fake: FakeReplica) -> dict[str, Any]:
            return {"auth": False, "replicas": [["127.0.0.1", fake.port]], "hidden": True}

        async def publish(shares: tuple[int, int]) -> None:
            versions = [
                {"name": "a", "share": shares[0], "route": "ep.a"},
                {"name": "b", "share": shares[1], "route": "ep.b"},
            ]
            endpoints = {
                "ep": {"versions": versions, "sticky": {"header": "X-User"}},
                "ck": {"versions": versions, "sticky": {"cookie": "session"}},
            }
            await proc.publish({"ep.a": entry(a), "ep.b": entry(b)}, endpoints)

        async def versions(name: str, keys: list[str], cookie: bool = False) -> dict[str, str]:
            url = f"{proc.url}/api/v1/service/{name}/score"
            seen: dict[str, str] = {}
            for key in keys:
                headers = {"cookie": f"lang=en; session={key}"} if cookie else {"x-user": key}
                answer = await client.post(url, json={"id": key}, headers=headers)
                version = answer.headers["azureml-model-deployment"]
                assert seen.setdefault(key, version) == version, key  # always the same
            return seen

        keys = [f"user-{i}" for i in range(50)]
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                await publish((90, 10))
                before = await versions("ep", keys * 4)
                expected = buckets([("a", 90), ("b", 10)])
                assert before == {k: sticky(k.encode(), expected) for k in keys}
                assert 0 < list(before.values()).count("b") < 15
                assert await versions("ck", keys, cookie=True) == before
                split = f"{proc.url}/api/v1/service/ep/score"
                keyless = [(await client.post(split, json={})).headers for _ in range(10)]
                assert [h["azureml-model-deployment"] for h in keyless].count("b") == 1
                await publish((80, 20))
                after = await versions("ep", keys * 2)
                moved = [k for k in keys if after[k] != before[k]]
                assert all(before[k] == "a" and after[k] == "b" for k in moved)
                assert 1 <= len(moved) <= 10  # about a tenth of the 50 keys
                grown = buckets([("a", 80), ("b", 20)], expected)
                assert after == {k: sticky(k.encode(), grown) for k in keys}
        finally:
            await a.stop()
            await b.stop()
            await proc.stop()

    asyncio.run(go())


def hidden_route(fake: FakeReplica, **settings: Any) -> dict[str, Any]:
    return {"auth": False, "replicas": [["127.0.0.1", fake.port]], "hidden": True, **settings}


async def until_stats(
    proc: RouterProcess, condition: Any, timeout_s: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await proc.stats()
        if stats is not None and condition(stats):
            return stats
        assert time.monotonic() < deadline, f"condition not met in time: {stats}"
        await asyncio.sleep(0.02)


def test_shadows_get_half_the_live_requests_and_are_compared_without_touching_them(
    tmp_path: Path,
) -> None:
    """A live version and four shadows at 50 %: one answering 500, one taking 2 s, one
    agreeing (its numbers within the tolerance), one disagreeing.  Each of 40 clients
    gets the live answer at once; each shadow gets exactly 20 copies (every second
    request), counted by outcome in the stats, the Prometheus text and the shadow
    route's own lane; requests pinning a version are not copied."""

    async def go() -> None:
        live = FakeReplica(extra={"score": 0.5})
        fakes = {
            "fail": FakeReplica(status=500),
            "slow": FakeReplica(extra={"score": 0.5}, delay=2.0),
            "same": FakeReplica(extra={"score": 0.5 + 1e-9}),
            "odd": FakeReplica(extra={"score": 0.6}),
        }
        for fake in (live, *fakes.values()):
            await fake.start()
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()
        services = {"ep.blue": hidden_route(live)}
        services |= {f"ep.{n}": hidden_route(f, maxConcurrent=32) for n, f in fakes.items()}
        endpoint = {
            "versions": [{"name": "blue", "share": 100, "route": "ep.blue"}],
            "shadows": [{"name": n, "route": f"ep.{n}", "percent": 50} for n in fakes],
        }
        await proc.publish(services, {"ep": endpoint})
        url = f"{proc.url}/api/v1/service/ep/score"
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                answers, waits = [], []
                for i in range(40):
                    started = time.monotonic()
                    answers.append(await client.post(url, json={"id": str(i)}))
                    waits.append(time.monotonic() - started)
                pin = {"azureml-model-deployment": "blue"}
                pinned = [await client.post(url, json={"id": "p"}, headers=pin) for _ in range(4)]
            assert [(r.status_code, r.json()) for r in answers] == [
                (200, {"id": str(i), "score": 0.5}) for i in range(40)
            ]
            assert {r.headers["azureml-model-deployment"] for r in answers} == {"blue"}
            assert max(waits) < 1.0  # never held up by the slow shadow's 2 s
            assert [r.status_code for r in pinned] == [200] * 4 and len(live.seen) == 44

            def settled(stats: dict[str, Any]) -> bool:
                shadows = stats["endpoints"]["ep"]["shadows"].values()
                return all(s["compared"] + s["shadowErrors"] == 20 for s in shadows)

            stats = await until_stats(proc, settled)
            text = await metrics(proc.admin_url)
        finally:
            for fake in (live, *fakes.values()):
                await fake.stop()
            await proc.stop()
        shadows = stats["endpoints"]["ep"]["shadows"]
        counts = {
            name: (s["mirrored"], s["dropped"], s["compared"], s["agreed"], s["shadowErrors"])
            for name, s in shadows.items()
        }
        assert counts == {
            "fail": (20, 0, 0, 0, 20),
            "slow": (20, 0, 20, 20, 0),
            "same": (20, 0, 20, 20, 0),
            "odd": (20, 0, 20, 0, 0),
        }
        slow = shadows["slow"]
        assert slow["shadowSeconds"] - slow["liveSeconds"] > 20 * 1.9
        odd = shadows["odd"]
        assert 0 < odd["shadowSeconds"] < 20 and 0 < odd["liveSeconds"] < 20
        # Every second live request, and none of the pinned ones.
        assert sorted(fakes["same"].seen, key=int) == [str(i) for i in range(1, 40, 2)]
        assert stats["services"]["ep.fail"]["requests"]["5xx"] == 20  # its own lane's count
        assert stats["services"]["ep.blue"]["requests"]["2xx"] == 44
        metric = "modelport_router_shadow_requests_total"
        assert value(text, metric, service="ep", version="odd", outcome="disagreed") == 20
        assert value(text, metric, service="ep", version="fail", outcome="error") == 20
        assert value(text, metric, service="ep", version="same", outcome="agreed") == 20
        assert "# TYPE modelport_router_shadow_latency_difference_seconds gauge" in text

    asyncio.run(go())


def test_a_stuck_shadow_keeps_its_own_queue_and_copies_beyond_the_bound_are_dropped(
    tmp_path: Path,
) -> None:
    """A shadow whose one slot is stuck: the first copy takes it, the second waits in
    the shadow's queue (of one), the next two find it full.  With the bound lowered to
    two copies in flight, the copies due next are dropped.  Clients are answered at
    once throughout; the counters survive the table update; released, the two copies
    in flight are compared."""

    async def go() -> None:
        live, stuck = FakeReplica(), FakeReplica(held=True)
        await live.start()
        await stuck.start()
        proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
        await proc.start()
        services = {
            "ep.blue": hidden_route(live),
            "ep.stuck": hidden_route(stuck, maxQueue=1, maxWaitMs=30000),
        }

        async def publish(bound: int) -> None:
            endpoint = {
                "versions": [{"name": "blue", "share": 100, "route": "ep.blue"}],
                "shadows": [{"name": "stuck", "route": "ep.stuck", "percent": 100}],
                "maxMirroredInFlight": bound,
            }
            await proc.publish(services, {"ep": endpoint})

        def shadow(stats: dict[str, Any]) -> dict[str, Any]:
            return dict(stats["endpoints"]["ep"]["shadows"]["stuck"])

        url = f"{proc.url}/api/v1/service/ep/score"
        try:
            async with httpx.AsyncClient(timeout=30) as client:

                async def answered_at_once(count: int) -> None:
                    for i in range(count):
                        started = time.monotonic()
                        answer = await client.post(url, json={"id": str(i)})
                        assert answer.status_code == 200 and time.monotonic() - started < 1.0

                await publish(64)
                await answered_at_once(4)
                stats = await until_stats(proc, lambda s: shadow(s)["shadowErrors"] == 2)
                await until(lambda: stuck.in_flight == 1)
                assert stats["services"]["ep.stuck"]["queueFull"] == 2
                assert stats["services"]["ep.stuck"]["queued"] == 1
                await publish(2)
                await answered_at_once(3)
                stats = await until_stats(proc, lambda s: shadow(s)["dropped"] == 3)
                assert shadow(stats)["mirrored"] == 4  # kept across the update
                stuck.release.set()
                stats = await until_stats(proc, lambda s: shadow(s)["compared"] == 2)
        finally:
            await live.stop()
            await stuck.stop()
            await proc.stop()
        counters = shadow(stats)
        assert {k: counters[k] for k in ("mirrored", "dropped", "agreed", "shadowErrors")} == {
            "mirrored": 4,
            "dropped": 3,
            "agreed": 2,
            "shadowErrors": 2,
        }
        assert len(live.seen) == 7 and stuck.peak == 1  # the shadow's cap held

    asyncio.run(go())


# -- pipelining (router/pipelining.py) ---------------------------------------------------
async def service_stats(proc: RouterProcess) -> dict[str, Any]:
    stats = await proc.stats()
    assert stats is not None
    return dict(stats["services"]["svc"])


async def warm_up(client: httpx.AsyncClient, url: str, count: int = 10) -> None:
    """Fast answers, one at a time: the replica becomes one that may be pipelined."""
    for i in range(count):
        assert (await client.post(url, json={"id": f"w{i}"})).status_code == 200


def test_pipelining_keeps_each_replica_at_its_cap(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], int, int, int]:
        async with router(tmp_path, 1, maxConcurrent=2, maxWaitMs=10000) as (proc, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                await warm_up(client, url)
                calls = [client.post(url, json={"id": str(i), "sleep": 0.01}) for i in range(60)]
                answers = await asyncio.gather(*calls)
            stats = await service_stats(proc)
            return (
                [r.status_code for r in answers],
                fakes[0].peak,
                stats["pipelined"],
                len(fakes[0].seen),
            )

    statuses, peak, pipelined, seen = asyncio.run(go())
    assert statuses == [200] * 60
    assert pipelined > 0  # requests did go behind running ones...
    assert peak == 2  # ...and the replica never executed more than its cap
    assert seen == 70


def test_a_slow_run_turns_pipelining_off_for_that_replica_at_once(tmp_path: Path) -> None:
    async def held_then_queued(
        client: httpx.AsyncClient, proc: RouterProcess, fake: FakeReplica, url: str
    ) -> int:
        """A held request, one more while it runs: how many went behind it."""
        before = (await service_stats(proc))["pipelined"]
        fake.release.clear()
        held = asyncio.ensure_future(client.post(url, json={"id": "h", "hold": True}))
        await until(lambda: fake.in_flight == 1)
        behind = asyncio.ensure_future(client.post(url, json={"id": "b"}))
        await until_queued_or_pipelined(proc, before)
        after = (await service_stats(proc))["pipelined"]
        fake.release.set()
        assert [(await held).status_code, (await behind).status_code] == [200, 200]
        return int(after - before)

    async def go() -> tuple[int, int]:
        async with router(tmp_path, 1, maxWaitMs=2000) as (proc, fakes, url):
            async with httpx.AsyncClient(timeout=30) as client:
                await warm_up(client, url)
                fast = await held_then_queued(client, proc, fakes[0], url)
                # One answer slower than a tenth of maxQueueWaitMs (0.2 s)...
                slow = await client.post(url, json={"id": "s", "sleep": 0.3})
                assert slow.status_code == 200
                # ...and the next request waits in the router's queue instead.
                return fast, await held_then_queued(client, proc, fakes[0], url)

    fast, after_slow = asyncio.run(go())
    assert fast == 1 and after_slow == 0


async def until_queued_or_pipelined(proc: RouterProcess, pipelined_before: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        stats = await service_stats(proc)
        if stats["queued"] >= 1 or stats["pipelined"] > pipelined_before:
            return
        assert time.monotonic() < deadline, "the second request never reached the router"
        await asyncio.sleep(0.005)


def test_a_504_on_a_pipelined_connection_fails_only_what_was_on_it(tmp_path: Path) -> None:
    async def go() -> tuple[int, int, list[int], dict[str, Any]]:
        settings = {"maxConcurrent": 2, "maxWaitMs": 20000, "scoringTimeoutMs": 2000}
        async with router(tmp_path, 1, **settings) as (proc, fakes, url):
            fake = fakes[0]
            async with httpx.AsyncClient(timeout=30) as client:
                await warm_up(client, url)
                held = asyncio.ensure_future(client.post(url, json={"id": "x", "hold": True}))
                await until(lambda: fake.in_flight == 1)
                slow = asyncio.ensure_future(client.post(url, json={"id": "y", "sleep": 1.0}))
                await until(lambda: fake.in_flight == 2)
                # One goes behind each running request, on its connection.
                behind = [client.post(url, json={"id": f"z{i}"}) for i in range(2)]
                answers = await asyncio.gather(held, slow, *behind)
            stats = await service_stats(proc)
            codes = [r.status_code for r in answers]
            return codes[0], codes[1], sorted(codes[2:]), stats

    held, slow, behind, stats = asyncio.run(go())
    assert held == 504 and slow == 200
    assert behind == [200, 504]  # the one behind the timed-out request, only
    assert stats["pipelined"] == 2 and stats["pipelineFailed"] == 1


def test_a_pipelined_request_a_draining_replica_never_started_is_placed_again(
    tmp_path: Path,
) -> None:
    async def go() -> tuple[list[int], list[str], dict[str, Any]]:
        async with router(tmp_path, 1, maxWaitMs=10000) as (proc, fakes, url):
            fake = fakes[0]
            async with httpx.AsyncClient(timeout=30) as client:
                await warm_up(client, url)
                fake.release.clear()
                held = asyncio.ensure_future(client.post(url, json={"id": "h", "hold": True}))
                await until(lambda: fake.in_flight == 1)
                behind = asyncio.ensure_future(client.post(url, json={"id": "b"}))
                await until_queued_or_pipelined(proc, 0)
                # Draining: it answers the running request with connection: close and
                # drops what waited behind it on that connection, unread.
                fake.state.closing = True
                fake.release.set()
                answers = [await held, await behind]
            stats = await service_stats(proc)
            return [r.status_code for r in answers], fake.seen[10:], stats

    statuses, seen, stats = asyncio.run(go())
    assert stats["pipelined"] == 1
    assert statuses == [200, 200] and seen == ["h", "b"]
    assert stats["pipelineFailed"] == 0
