"""Router overhead: the same replica reached directly and through the router, one run.

    python benchmarks/router_overhead.py [--seconds 10] [--connections 1,8,64]

Workloads: ``noop`` (returns its input) and ``iris`` (scikit-learn
LogisticRegression, one row per request).  For each, three servers are measured
with wrk (1 thread): the bare app (uvicorn + httptools, predict inline; part of
this folder), the modelport replica runtime reached directly, and modelport end
to end (router with key auth + that replica).  Needs wrk and scikit-learn.

Where HAProxy is installed (Debian package ``haproxy``) the same replica is also
measured behind HAProxy holding it to the same number of requests at a time
(``maxconn`` on the server line, one thread): what any proxy that keeps the cap
costs, next to what modelport's router costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path

from _common import (
    REPLICA_KEY,
    ROOT,
    free_port,
    replica_headers,
    start_server,
    wait_for_port,
    wrk,
)

from modelport import AksWebservice, InferenceConfig, Model, Workspace
from modelport.cli.demo import write_files

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""


def bare_app(workload: str, model_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bare_app.py"),
            workload,
            str(model_dir),
            str(port),
        ]
    )
    wait_for_port(port, "the bare app")
    return proc, f"http://127.0.0.1:{port}/score"


HAPROXY = """
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout queue 500ms
frontend scoring
    bind 127.0.0.1:{port}
    default_backend replica
backend replica
    http-reuse always
    http-request set-header x-modelport-replica-key {key}
    server r1 127.0.0.1:{replica} maxconn {cap}
"""


def haproxy(
    work: Path, replica_port: int, cap: int, key: str
) -> tuple[subprocess.Popen[bytes], str]:
    """HAProxy in front of the replica, queueing beyond ``cap`` requests like the router
    (and sending the replica key, as the router does)."""
    port = free_port()
    config = work / f"haproxy-{replica_port}.cfg"
    config.write_text(HAPROXY.format(port=port, replica=replica_port, cap=cap, key=key))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    wait_for_port(port, "haproxy")
    return proc, f"http://127.0.0.1:{port}/score"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure iris on peer servers (installed into a cache dir)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=1,
        help="replica_max_concurrent_requests (the v1 default is 1)",
    )
    parser.add_argument("--workers", type=int, default=1, help="router processes")
    parser.add_argument(
        "--peer",
        action="append",
        help="with --peers: only this peer (repeat for more), e.g. --peer kserve",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --peers: measure each peer and modelport in turn this many times",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    model_dir, _, _ = write_files(work / "files")
    (work / "noop").mkdir()
    (work / "noop" / "score.py").write_text(textwrap.dedent(NOOP))
    server, config = start_server(work / "home", workers=args.workers)
    bare: list[subprocess.Popen[bytes]] = []
    results = []
    peer_rows: list[tuple[str, int, dict[str, float], dict[str, float]]] = []
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, model_dir, "iris-classifier")
            one = AksWebservice.deploy_configuration(
                num_replicas=1,
                autoscale_enabled=False,
                replica_max_concurrent_requests=args.max_concurrent,
            )
            sources = {
                "iris": InferenceConfig(
                    entry_script="score.py", source_directory=work / "files" / "source"
                ),
                "noop": InferenceConfig(entry_script="score.py", source_directory=work / "noop"),
            }
            for workload, ic in sources.items():
                service = Model.deploy(ws, workload, [model], ic, one)
                service.wait_for_deployment()
                key = service.get_keys()[0]
                replica = f"http://127.0.0.1:{service.serialize()['replicas'][0]['port']}/score"
                inside = replica_headers(work / "home", workload)  # as the router sends it
                proc, bare_url = bare_app(workload, model_dir)
                bare.append(proc)
                proxy_url = None
                if shutil.which("haproxy"):
                    replica_port = service.serialize()["replicas"][0]["port"]
                    proc, proxy_url = haproxy(
                        work, replica_port, args.max_concurrent, inside[REPLICA_KEY]
                    )
                    bare.append(proc)
                if workload == "iris" and args.peers:
                    peer_rows = measure_peers(model_dir, work, args, service.scoring_uri, key)
                for c in (int(x) for x in args.connections.split(",")):
                    row = {
                        "bare": wrk(bare_url, c, args.seconds),
                        "direct": wrk(replica, c, args.seconds, headers=inside),
                        "router": wrk(
                            service.scoring_uri,
                            c,
                            args.seconds,
                            headers={"Authorization": f"Bearer {key}"},
                        ),
                    }
                    if proxy_url is not None:
                        row["haproxy"] = wrk(proxy_url, c, args.seconds)
                    results.append((workload, c, row))
    finally:
        for proc in bare:
            proc.terminate()
            proc.wait(timeout=30)
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Router overhead ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up, "
        f"max concurrent per replica {args.max_concurrent}, router workers {args.workers})\n"
    )
    print(
        "| workload | conns | bare req/s | direct req/s | router req/s | direct/bare | "
        "router/direct | p50 bare / direct / router ms | p99 bare / direct / router ms | "
        "added p50 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for workload, c, r in results:
        b, d, x = r["bare"], r["direct"], r["router"]
        print(
            f"| {workload} | {c} | {b['rps']:.0f} | {d['rps']:.0f} | {x['rps']:.0f} | "
            f"{d['rps'] / b['rps']:.2f}x | {x['rps'] / d['rps']:.2f}x | "
            f"{b['p50']:.2f} / {d['p50']:.2f} / {x['p50']:.2f} | "
            f"{b['p99']:.2f} / {d['p99']:.2f} / {x['p99']:.2f} | {x['p50'] - d['p50']:+.2f} | "
            f"{int(b['errors'] + d['errors'] + x['errors'])} |"
        )
    if any("haproxy" in r for _, _, r in results):
        print(
            f"\n### The same replica behind HAProxy with maxconn {args.max_concurrent} "
            "(one thread, no auth)\n"
        )
        print(
            "| workload | conns | direct req/s | haproxy req/s | router req/s | haproxy/direct | "
            "router/direct | router/haproxy | p50 haproxy / router ms |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for workload, c, r in results:
            d, h, x = r["direct"], r["haproxy"], r["router"]
            print(
                f"| {workload} | {c} | {d['rps']:.0f} | {h['rps']:.0f} | {x['rps']:.0f} | "
                f"{h['rps'] / d['rps']:.2f}x | {x['rps'] / d['rps']:.2f}x | "
                f"{x['rps'] / h['rps']:.2f}x | {h['p50']:.2f} / {x['p50']:.2f} |"
            )
    if peer_rows:
        print_peers(peer_rows)


def measure_peers(
    model_dir: Path, work: Path, args: argparse.Namespace, modelport_url: str, key: str
) -> list[tuple[str, int, dict[str, float], dict[str, float]]]:
    """iris on each peer and on modelport end to end (router + 1 replica, auth on)."""
    import sklearn
    from peers import PEERS, install, start, stop

    rows = []
    known = {p.name for p in PEERS}
    unknown = set(args.peer or ()) - known
    if unknown:
        raise SystemExit(f"no peer {sorted(unknown)}; the peers are {sorted(known)}")
    for peer in [p for p in PEERS if not args.peer or p.name in args.peer]:
        venv = install(peer, sklearn.__version__)
        running = start(peer, venv, model_dir, work / peer.name)
        try:
            for _ in range(args.rounds):  # in turn, so a slow phase falls on both alike
                for c in (int(x) for x in args.connections.split(",")):
                    theirs = wrk(running.url, c, args.seconds, body=running.body)
                    auth = {"Authorization": f"Bearer {key}"}
                    ours = wrk(modelport_url, c, args.seconds, headers=auth)
                    rows.append((peer.name, c, theirs, ours))
        finally:
            stop(running)
    return rows


def print_peers(rows: list[tuple[str, int, dict[str, float], dict[str, float]]]) -> None:
    print(
        "\n### iris against the peers (one worker each; modelport: router + 1 replica, auth on)\n"
    )
    print(
        "| peer | conns | peer req/s | p50 ms | p99 ms | modelport req/s | p50 ms | p99 ms | "
        "modelport/peer | errors |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, c, t, o in rows:
        print(
            f"| {name} | {c} | {t['rps']:.0f} | {t['p50']:.2f} | {t['p99']:.2f} | {o['rps']:.0f} | "
            f"{o['p50']:.2f} | {o['p99']:.2f} | {o['rps'] / t['rps']:.2f}x | "
            f"{int(t['errors'] + o['errors'])} |"
        )


if __name__ == "__main__":
    main()
