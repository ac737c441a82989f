"""TLS on the router: HTTPS against HTTP through it, with HAProxy terminating TLS as the reference.

    python benchmarks/tls.py [--seconds 8] [--connections 1,8,64] [--max-concurrent 1]

One replica (the ``noop`` script: it returns its input, so the proxies' own work
shows) is deployed by a ``modelport up``; then, in front of that same replica,
all in one run:

- the router over HTTP and the router over HTTPS: two routers started the way the
  control plane starts them (``RouterProcess``), the same route table (key auth,
  the same cap of requests at a time), one with ``--tls``-style certificate files;
- HAProxy over HTTP and over HTTPS (``ssl crt``, ALPN http/1.1, TLS 1.2+), holding
  the replica to the same cap (``maxconn``), one thread.

Keep-alive throughput comes from wrk (1 thread) at each connection count; new
connections per second from ``openssl s_time -new`` (a full handshake each time,
one at a time, no request) against both TLS terminators.  The certificate is an
EC P-256 one from ``--tls self-signed``'s code.  Needs wrk, haproxy and openssl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

from _common import REPLICA_KEY, free_port, replica_headers, start_server, wait_for_port, wrk

from modelport import AksWebservice, InferenceConfig, Model, Workspace
from modelport.cli.demo import write_files
from modelport.control import certificates
from modelport.control.controller import key_digest
from modelport.control.router_process import RouterProcess
from modelport.control.tls import TlsSettings

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""

HAPROXY = """
global
    maxconn 4096
    nbthread 1
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout queue 500ms
frontend plain
    bind 127.0.0.1:{plain}
    default_backend replica
frontend tls
    bind 127.0.0.1:{tls} ssl crt {pem} alpn http/1.1
    default_backend replica
backend replica
    http-reuse always
    http-request set-header x-modelport-replica-key {key}
    server r1 127.0.0.1:{replica} maxconn {cap}
"""
TOKEN = "b" * 43


def haproxy(
    work: Path, replica: int, cap: int, pem: Path, key: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    plain, tls = free_port(), free_port()
    config = work / "haproxy.cfg"
    values = {"plain": plain, "tls": tls, "pem": pem, "replica": replica, "cap": cap, "key": key}
    config.write_text(HAPROXY.format(**values))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    wait_for_port(plain, "haproxy")
    wait_for_port(tls, "haproxy")
    return proc, plain, tls


async def start_router(
    home: Path, entry: dict[str, Any], workers: int, tls: TlsSettings | None
) -> RouterProcess:
    """A router as the control plane starts one, serving ``entry`` as ``noop``."""
    proc = RouterProcess(home, "127.0.0.1", 0, TOKEN, workers=workers, tls=tls)
    await proc.start()
    await proc.publish({"noop": entry})
    return proc


def handshakes(port: int, seconds: int) -> float:
    """Full handshakes per second, one connection at a time (``openssl s_time -new``)."""
    out = subprocess.run(
        ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"(\d+) connections in ([\d.]+)s; ([\d.]+) connections/user sec", out)
    real = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if match is None or real is None:
        raise SystemExit(f"openssl s_time output not understood:\n{out}")
    return int(real.group(1)) / int(real.group(2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="medians over rounds in turn")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="router processes")
    args = parser.parse_args()
    for tool in ("wrk", "haproxy", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install {tool}")
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-tls-"))
    model_dir, _, _ = write_files(work / "files")
    (work / "noop").mkdir()
    (work / "noop" / "score.py").write_text(textwrap.dedent(NOOP))
    made, _ = certificates.ensure(work / "tls", ["127.0.0.1", "localhost"])
    pem = work / "haproxy.pem"
    pem.write_bytes(made.cert.read_bytes() + made.key.read_bytes())
    server, config = start_server(work / "home")
    others: list[subprocess.Popen[bytes]] = []
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, model_dir, "iris-classifier")
            one = AksWebservice.deploy_configuration(
                num_replicas=1,
                autoscale_enabled=False,
                replica_max_concurrent_requests=args.max_concurrent,
            )
            ic = InferenceConfig(entry_script="score.py", source_directory=work / "noop")
            service = Model.deploy(ws, "noop", [model], ic, one)
            service.wait_for_deployment()
            key = service.get_keys()[0]
            replica = int(service.serialize()["replicas"][0]["port"])
        inside = replica_headers(work / "home", "noop")[REPLICA_KEY]  # the router sends it
        entry = {
            "replicaKey": inside,
            "auth": True,
            "keyDigests": [key_digest(key)],
            "replicas": [["127.0.0.1", replica]],
            "scoringTimeoutMs": 60000,
            "maxConcurrent": args.max_concurrent,
            "maxWaitMs": 500,
            "maxQueue": 100,
        }
        tls = TlsSettings(made.cert, made.key)
        proc, plain, tls_port = haproxy(work, replica, args.max_concurrent, pem, inside)
        others.append(proc)
        rows, rates = asyncio.run(measure(args, work, entry, key, plain, tls_port, tls))
    finally:
        for proc in others:
            proc.terminate()
            proc.wait(timeout=30)
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    report(args, rows, rates)


async def measure(
    args: argparse.Namespace,
    work: Path,
    entry: dict[str, Any],
    key: str,
    plain: int,
    tls_port: int,
    tls: TlsSettings,
) -> tuple[list[tuple[int, dict[str, dict[str, float]]]], dict[str, float]]:
    routers = [
        await start_router(work / "router-http", entry, args.workers, None),
        await start_router(work / "router-https", entry, args.workers, tls),
    ]
    path = "/api/v1/service/noop/score"
    urls = {
        "router http": routers[0].url + path,
        "router https": routers[1].url + path,
        "haproxy http": f"http://127.0.0.1:{plain}/score",
        "haproxy https": f"https://127.0.0.1:{tls_port}/score",
    }
    auth = {"Authorization": f"Bearer {key}"}
    rows = []
    try:
        for c in (int(x) for x in args.connections.split(",")):
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
            for _ in range(args.rounds):  # in turn, so a busy spell hits them all
                for name, url in urls.items():
                    found = await asyncio.to_thread(wrk, url, c, args.seconds, headers=auth)
                    runs[name].append(found)
            rows.append((c, {name: _median(found) for name, found in runs.items()}))
        ports = {"router": routers[1].port, "haproxy": tls_port}
        made: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                made[name].append(await asyncio.to_thread(handshakes, port, args.seconds))
        rates = {name: statistics.median(found) for name, found in made.items()}
    finally:
        for router in routers:
            await router.stop()
    return rows, rates


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds, with the rounds' req/s range."""
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["errors"] = sum(r["errors"] for r in runs)
    out["low"], out["high"] = min(r["rps"] for r in runs), max(r["rps"] for r in runs)
    return out


def report(
    args: argparse.Namespace,
    rows: list[tuple[int, dict[str, dict[str, float]]]],
    rates: dict[str, float],
) -> None:
    print(
        f"## TLS termination ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up, "
        f"median of {args.rounds} rounds in turn (req/s range in brackets), noop replica, "
        f"max concurrent {args.max_concurrent}, router workers {args.workers})\n"
    )
    print(
        "| conns | router http | router https | https/http | haproxy http | haproxy https | "
        "https/http | p50 router http / https ms | p50 haproxy http / https ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, r in rows:
        rh, rs, hh, hs = r["router http"], r["router https"], r["haproxy http"], r["haproxy https"]
        errors = int(sum(x["errors"] for x in r.values()))
        print(
            f"| {c} | {_rps(rh)} | {_rps(rs)} | {rs['rps'] / rh['rps']:.2f}x | "
            f"{_rps(hh)} | {_rps(hs)} | {hs['rps'] / hh['rps']:.2f}x | "
            f"{rh['p50']:.2f} / {rs['p50']:.2f} | {hh['p50']:.2f} / {hs['p50']:.2f} | {errors} |"
        )
    print(
        f"\nNew TLS connections per second (openssl s_time -new, one at a time): router "
        f"{rates['router']:.0f}, haproxy {rates['haproxy']:.0f} "
        f"({rates['router'] / rates['haproxy']:.2f}x)"
    )


def _rps(figures: dict[str, float]) -> str:
    return f"{figures['rps']:.0f} [{figures['low']:.0f}-{figures['high']:.0f}]"


if __name__ == "__main__":
    sys.exit(main())
