"""What the router's request log costs: the same service with the log on and off, one run.

    python benchmarks/request_log.py [--seconds 10] [--connections 8] [--rounds 3]

Two servers, each with a ``noop`` service of one replica (the cheapest request,
so the router's share of the work is largest): one as deployed by default
(request log on), one started with ``MODELPORT_REQUEST_LOG=off``.  wrk (1 thread)
drives them in turn, off then on, ``rounds`` times; the figures are the median
round of each, and the ratio on/off.  Beside throughput (noisy on a shared
machine), the router workers' CPU time per request (from /proc, Linux only;
requests counted by the router's own counters, warm-up included).  Last, the
log's own CPU per request measured in this process (``add`` on the hot path plus
the writer thread, paced to 10k requests a second), the steadiest figure on a
shared machine, and what it is of the router's CPU per request.  Needs wrk.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from _common import scripts_folder, start_server, wrk, wrk_arguments

from modelport import AksWebservice, InferenceConfig, Model, Workspace

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""


def deploy(config: dict[str, Any], work: Path) -> tuple[str, str]:
    """The noop service on this server: its scoring URI and key."""
    with Workspace(config["url"], config["token"]) as ws:
        model = Model.register(ws, work / "noop", "noop")
        one = AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False)
        ic = InferenceConfig(entry_script="score.py", source_directory=work / "noop")
        service = Model.deploy(ws, "noop", [model], ic, one)
        service.wait_for_deployment()
        return str(service.scoring_uri), service.get_keys()[0]


def router_workers(home: Path) -> list[int]:
    """The router's worker processes: the children of its supervisor."""
    supervisor = json.loads((home / "router" / "router.json").read_text())["pid"]
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    return [int(pid) for pid in children.split()]


def cpu_seconds(pids: list[int], threads: bool = False) -> float:
    """User plus system CPU time of these processes (all their threads); ``threads``:
    of their threads but the main one alone (the router's: the request log's writer)."""
    total = 0
    for pid in pids:
        tids = [t for t in os.listdir(f"/proc/{pid}/task") if t != str(pid)] if threads else []
        paths = [f"/proc/{pid}/task/{t}/stat" for t in tids] if threads else [f"/proc/{pid}/stat"]
        for path in paths:
            fields = Path(path).read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def answered(config: dict[str, Any]) -> int:
    """Scoring requests the router has answered so far (its ``/stats`` counters)."""
    url, token = config["routerAdminUrl"], config["token"]
    stats = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {token}"}).json()
    return sum(sum(s["requests"].values()) for s in stats["services"].values())


def added_cpu_us(rounds: int = 3, n: int = 50_000) -> float:
    """CPU time (all threads) the request log adds per request: the median of rounds
    of ``n`` requests' allocations with and without ``add``."""
    from modelport.httpserver import Response
    from modelport.router.requestlog import Entry, RequestLog

    def requests(book: RequestLog | None) -> float:
        started = time.process_time()
        for i in range(n):
            headers = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer k"), (b"a", b"b")]
            answer = Response(200, b"[1]", [(b"x-request-id", str(i).encode()), (b"c", b"d")])
            if book is not None:
                entry = Entry("noop", headers, 30)
                entry.waited_s, entry.replica = 1e-5, ("127.0.0.1", 40000)
                book.add(entry, answer, 0.001)
            if i % 100 == 0:
                time.sleep(0.01)  # 10k a second: the writer keeps up, as in the router
        if book is not None:
            book.close()
        return time.process_time() - started

    added = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            off = requests(None)
            book = RequestLog(Path(folder) / "requests-0.jsonl")
            book.start()
            added.append((requests(book) - off) / n * 1e6)
    return statistics.median(added)


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    args = wrk_arguments(seconds=10)
    work = scripts_folder({"noop": NOOP})
    servers = []
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    logged = total = dropped = 0
    try:
        targets = {}
        for mode in ("off", "on"):
            env = {**os.environ, "MODELPORT_REQUEST_LOG": mode}
            proc, config = start_server(work / f"home-{mode}", env=env)
            servers.append(proc)
            targets[mode] = (*deploy(config, work), config)
        for _ in range(args.rounds):
            for mode, (url, key, config) in targets.items():
                workers = router_workers(work / f"home-{mode}")
                before, count = cpu_seconds(workers), answered(config)
                writer = cpu_seconds(workers, threads=True)
                headers = {"Authorization": f"Bearer {key}"}
                run = wrk(url, int(args.connections), args.seconds, headers=headers)
                requests = answered(config) - count
                run["cpu_us"] = (cpu_seconds(workers) - before) / requests * 1e6
                run["writer_us"] = (cpu_seconds(workers, threads=True) - writer) / requests * 1e6
                runs[mode].append(run)
        total = answered(targets["on"][2])
        for path in (work / "home-on" / "logs").glob("requests-*.jsonl*"):
            with path.open("rb") as f:
                logged += sum(1 for _ in f)
        router_log = (work / "home-on" / "logs" / "router.log").read_text(errors="replace")
        dropped = sum(int(n) for n in re.findall(r"request log: (\d+) lines dropped", router_log))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=60)
        off_files = list((work / "home-off" / "logs").glob("requests-*"))
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Request log cost ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1 -c{args.connections}, {args.seconds} s "
        f"after 2 s warm-up, {args.rounds} rounds off/on alternating, noop, 1 replica)\n"
    )
    print(
        "| request log | req/s per round | median req/s | p50 ms | p99 ms | "
        "router CPU µs/request per round | median | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode, rs in runs.items():
        rounds = " / ".join(f"{r['rps']:.0f}" for r in rs)
        cpus = " / ".join(f"{r['cpu_us']:.0f}" for r in rs)
        print(
            f"| {mode} | {rounds} | {median(rs, 'rps'):.0f} | {median(rs, 'p50'):.2f} | "
            f"{median(rs, 'p99'):.2f} | {cpus} | {median(rs, 'cpu_us'):.1f} | "
            f"{int(sum(r['errors'] for r in rs))} |"
        )
    ratio = median(runs["on"], "rps") / median(runs["off"], "rps")
    cpu = median(runs["on"], "cpu_us") / median(runs["off"], "cpu_us")
    print(f"\non/off throughput: {ratio:.3f}x (cost {100 * (1 - ratio):+.1f} %)")
    print(f"on/off router CPU per request: {cpu:.3f}x ({100 * (cpu - 1):+.1f} %)")
    print(
        f"requests answered with the log on: {total}; lines in the files kept: {logged} "
        f"(older ones rotated out); dropped for a full buffer: {dropped}; "
        f"files with the log off: {len(off_files)}"
    )
    writer = median(runs["on"], "writer_us")
    print(
        f"the writer thread (log on): {writer:.2f} us of CPU a request "
        f"({100 * writer / median(runs['on'], 'cpu_us'):.1f} % of the router's)"
    )
    added = added_cpu_us()
    base = median(runs["off"], "cpu_us")
    print(
        f"in-process: the log adds {added:.2f} us of CPU a request, "
        f"{100 * added / base:.1f} % of the router's {base:.1f} us (log off, above)"
    )


if __name__ == "__main__":
    main()
