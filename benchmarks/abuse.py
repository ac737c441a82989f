"""Abuse: a keyed client's latency while clients without credentials attack the router.

    python benchmarks/abuse.py [--seconds 8] [--rounds 2] [--attacker-nice 19]

One router worker (default limits) in front of a no-op replica (the shared HTTP
server answering 200 at once, in a process of its own), one key-auth service.  A
keyed client sends small requests one after another on a kept-alive connection and
times each.  Phases, each ``--seconds`` long and measured in the same run: quiet,
then each attack from a process of its own, then quiet again, ``--rounds`` times:

- ``uploads``: 4 connections at a time declare 99 MB without a key and stream it
  until answered, then start again;
- ``slowloris``: 100 connections send part of a head, a header line a second, and
  are replaced when the router closes them (at its 10 s header deadline);
- ``big heads``: 4 connections at a time send a 20 KiB header and read the 431.

Printed: per phase the keyed client's requests, p50 and p99 latency and errors, and
each attack's p50 and p99 over the median quiet figure of the same run; the router
worker's CPU (share of one core) and how many attacks ended.  Everything shares the
machine's cores (router, replica, attackers, client): with ``--attacker-nice 0`` the
ratios include the attackers' own CPU use; the default (19) lets the attackers run
on what the others leave, closer to attackers on machines of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from _common import ROOT

from modelport.control.router_process import RouterProcess

KEY = "k" * 32
TOKEN = "t" * 40
PATH = "/api/v1/service/svc/score"
REPLICA = """
import asyncio, socket, sys
from modelport.httpserver import HttpProtocol, Response, ServerState

async def ok(request):
    return Response(200, b'{"ok": true}', [(b"content-type", b"application/json")])

async def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    state = ServerState(ok)
    server = await asyncio.get_running_loop().create_server(lambda: HttpProtocol(state), sock=sock)
    await asyncio.Event().wait()

asyncio.run(main())
"""
ATTACKS = ("uploads", "slowloris", "big heads")
DONE = [0, 0]  # an attacker's finished attempts (answered or closed), body bytes sent


# -- attackers (run as ``abuse.py --attack NAME PORT``) -----------------------------------
async def _exchange(port: int, head: bytes, body_size: int = 0) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    chunk = b"0" * 262144
    sent = 0
    try:
        while sent < body_size and not reader.at_eof():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            if reader._buffer:  # type: ignore[attr-defined]  # answered: stop sending
                break
        await reader.read(65536)
    except OSError:
        pass
    finally:
        DONE[0] += 1
        DONE[1] += sent
        writer.close()


async def _loop(action: Any) -> None:
    while True:
        try:
            await action()
        except OSError:
            await asyncio.sleep(0.01)


async def _slowloris(port: int) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"POST {PATH} HTTP/1.1\r\nhost: x\r\n".encode())
            for i in range(1000):
                await asyncio.sleep(1)
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(b"x-%d: slow\r\n" % i)
                await writer.drain()
            DONE[0] += 1
            writer.close()
        except OSError:
            await asyncio.sleep(0.01)


async def attack(name: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: (print(*DONE, flush=True), os._exit(0)))
    if name == "uploads":
        head = f"POST {PATH} HTTP/1.1\r\nhost: x\r\ncontent-length: {99 << 20}\r\n\r\n".encode()
        await asyncio.gather(*(_loop(lambda: _exchange(port, head, 99 << 20)) for _ in range(4)))
    elif name == "slowloris":
        await asyncio.gather(*(_slowloris(port) for _ in range(100)))
    else:
        head = f"POST {PATH} HTTP/1.1\r\nhost: x\r\nx-big: {'a' * 20480}\r\n\r\n".encode()
        await asyncio.gather(*(_loop(lambda: _exchange(port, head)) for _ in range(4)))


# -- the keyed client -----------------------------------------------------------------
def keyed_client(port: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of one request after another on one connection; and the non-200s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    latencies, errors = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            conn.request("POST", PATH, body=b'{"data": [1]}', headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
        latencies.append((time.perf_counter() - started) * 1000)
        errors += not ok
    conn.close()
    return latencies, errors


def summary(latencies: list[float], errors: int) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"n": len(latencies), "p50": cuts[49], "p99": cuts[98], "errors": errors}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(port: int, worker: int, name: str, seconds: float, nice: int) -> dict[str, float]:
    attacker = None
    if name in ATTACKS:
        command = ["nice", "-n", str(nice), sys.executable, __file__, "--attack", name, str(port)]
        attacker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # the attack under way before timing starts
    try:
        before, started = cpu_s(worker), time.monotonic()
        result = summary(*keyed_client(port, seconds))
        result["router_cpu"] = (cpu_s(worker) - before) / (time.monotonic() - started)
    finally:
        if attacker is not None:
            attacker.terminate()
            out, _ = attacker.communicate()
            attempts, sent = (int(n) for n in out.split())  # the whole phase, warm-up too
            result["attempts"], result["sent_mb"] = attempts, sent / max(attempts, 1) / 1e6
    return result


async def serve_and_measure(
    work: Path, seconds: float, rounds: int, nice: int
) -> list[tuple[str, Any]]:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    replica = subprocess.Popen(
        [sys.executable, "-c", REPLICA, str(listener.fileno())],
        pass_fds=(listener.fileno(),),
        env=env,
    )
    replica_port = listener.getsockname()[1]
    listener.close()
    router = RouterProcess(work, "127.0.0.1", 0, TOKEN)
    await router.start()
    entry = {
        "auth": True,
        "keyDigests": [hashlib.sha256(KEY.encode()).hexdigest()],
        "replicas": [["127.0.0.1", replica_port]],
        "maxConcurrent": 4,
        "maxWaitMs": 5000,
    }
    await router.publish({"svc": entry})
    results: list[tuple[str, Any]] = []
    (worker,) = (int(p) for p in _children(router.pid or 0))
    try:
        await asyncio.to_thread(phase, router.port, worker, "quiet", 2, nice)  # warm-up
        for name in [*(["quiet", *ATTACKS] * rounds), "quiet"]:
            result = await asyncio.to_thread(phase, router.port, worker, name, seconds, nice)
            results.append((name, result))
    finally:
        await router.stop()
        replica.terminate()
        replica.wait()
    return results


def _children(pid: int) -> list[str]:
    """The router supervisor's worker processes."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text().split()


def report(results: list[tuple[str, Any]], args: argparse.Namespace) -> None:
    quiet = [r for name, r in results if name == "quiet"]
    base50 = statistics.median(r["p50"] for r in quiet)
    base99 = statistics.median(r["p99"] for r in quiet)
    print(
        f"## Abuse: keyed client latency under attack ({date.today()}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, 1 router worker, "
        f"{args.seconds:g} s per phase, {args.rounds} rounds, attackers at nice "
        f"{args.attacker_nice})\n"
    )
    print(
        "| phase | requests | p50 ms | p99 ms | errors | p50 / quiet | p99 / quiet "
        "| router CPU | attacks ended | MB sent per attack |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results:
        sent = f"{r['sent_mb']:.2f}" if "sent_mb" in r else ""
        print(
            f"| {name} | {r['n']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} "
            f"| {r['p50'] / base50:.2f}x | {r['p99'] / base99:.2f}x | {r['router_cpu']:.0%} "
            f"| {r.get('attempts', '')} | {sent} |"
        )
    print()
    for name in ATTACKS:
        worst = max(r["p99"] for n, r in results if n == name)
        print(f"- {name}: worst p99 {worst / base99:.2f}x the median quiet p99 ({base99:.2f} ms)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--attack":
        asyncio.run(attack(sys.argv[2], int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--attacker-nice", type=int, default=19)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        run = serve_and_measure(Path(work), args.seconds, args.rounds, args.attacker_nice)
        results = asyncio.run(run)
    report(results, args)
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
