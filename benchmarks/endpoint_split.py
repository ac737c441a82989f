"""Endpoint split: what dealing requests between versions costs the router, one run.

    python benchmarks/endpoint_split.py [--seconds 10] [--connections 3,24] [--rounds 2]

Three replicas of a no-op script, reached four ways through the same router (key auth
on): a single service with three replicas (the baseline), an endpoint with one version
of three replicas (what the endpoint's lookup and answer header cost), an endpoint with
three versions of one replica each at 34/33/33 %, and that endpoint with a fourth
version receiving a 10 % shadow copy of the traffic.  Each is measured with wrk (1 thread) in
rounds (each starting with another target), and compared with that round's baseline: this machine's
throughput drifts by tens of percent over a minute, so only paired ratios mean anything;
the median ratio of the rounds is shown with their range.  What the split costs the
router is best read in its CPU time per client request (from /proc, all router
processes, over the router's own request counts): unlike wall-clock throughput it does
not move with what else the machine runs.  Needs wrk.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import textwrap
from datetime import date
from pathlib import Path

import httpx
from _common import start_server, wrk

from modelport import AksEndpoint, AksWebservice, InferenceConfig, Model, Workspace

BASELINE = "single service, 3 replicas"
NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""


def router_cpu_seconds() -> float:
    """CPU time (user + system) of every router process on this machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"modelport.router" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def answered(config: dict[str, str], target: str) -> int:
    """Client requests the router answered for ``target`` (its versions; no shadow copy)."""
    stats = httpx.get(
        f"{config['routerAdminUrl']}/stats",
        headers={"Authorization": f"Bearer {config['token']}"},
    ).json()
    return sum(
        sum(route["requests"].values())
        for name, route in stats["services"].items()
        if (name == target or name.startswith(f"{target}.")) and not name.endswith(".shadow")
    )


def decision_us(rounds: int = 200_000) -> float:
    """What an endpoint adds to a request in the router, timed alone: the pin header's
    scan, the split's pick, and the answer with the version header."""
    import timeit

    from modelport.httpserver import Response
    from modelport.router.proxy import VERSION_HEADER, _named
    from modelport.router.split import Split

    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + b"k" * 43),
        (b"content-length", b"34"),
    ]
    split = Split([("v-one", 34), ("v-two", 33), ("v-three", 33)])
    answer = Response(200, b"{}", [(b"content-type", b"application/json")])

    def one() -> None:
        next((v for k, v in headers if k == VERSION_HEADER), None)
        _named(answer, split.pick())

    return min(timeit.repeat(one, number=rounds, repeat=5)) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="3,24")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    (work / "noop").mkdir()
    (work / "noop" / "score.py").write_text(textwrap.dedent(NOOP))
    (work / "model.txt").write_text("none")
    server, config = start_server(work / "home")
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    costs: dict[tuple[str, int], list[float]] = {}
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, work / "model.txt", "noop")
            ic = InferenceConfig(entry_script="score.py", source_directory=work / "noop")
            three = AksWebservice.deploy_configuration(num_replicas=3, autoscale_enabled=False)
            service = Model.deploy(ws, "single", [model], ic, three)
            service.wait_for_deployment()
            version = AksEndpoint.deploy_configuration(
                version_name="v-one", num_replicas=1, autoscale_enabled=False
            )
            split = Model.deploy(ws, "split", [model], ic, version)
            assert isinstance(split, AksEndpoint)
            for name, percent in (("v-two", 33), ("v-three", 33)):
                split.create_version(
                    name, models=[model], inference_config=ic, num_replicas=1,
                    traffic_percentile=percent,
                )  # fmt: skip
            mirrored = Model.deploy(
                ws, "mirrored", [model], ic,
                AksEndpoint.deploy_configuration(
                    version_name="v-one", num_replicas=1, autoscale_enabled=False
                ),
            )  # fmt: skip
            assert isinstance(mirrored, AksEndpoint)
            for name, percent in (("v-two", 33), ("v-three", 33)):
                mirrored.create_version(
                    name, models=[model], inference_config=ic, num_replicas=1,
                    traffic_percentile=percent,
                )  # fmt: skip
            mirrored.create_version(
                "shadow", models=[model], inference_config=ic, num_replicas=1,
                shadow_percentile=10,
            )  # fmt: skip
            solo = Model.deploy(
                ws, "solo", [model], ic,
                AksEndpoint.deploy_configuration(
                    version_name="v-one", num_replicas=3, autoscale_enabled=False
                ),
            )  # fmt: skip
            assert isinstance(solo, AksEndpoint)
            for endpoint in (split, mirrored, solo):
                endpoint.wait_for_deployment()
            targets = {
                BASELINE: (service.scoring_uri, service.get_keys()[0]),
                "endpoint, 1 version of 3 replicas": (solo.scoring_uri, solo.get_keys()[0]),
                "endpoint, 3 versions 34/33/33": (split.scoring_uri, split.get_keys()[0]),
                "endpoint, 3 versions + 10 % shadow": (
                    mirrored.scoring_uri,
                    mirrored.get_keys()[0],
                ),
            }
            names = list(targets)
            for round_ in range(args.rounds):
                # Each round starts with another target: no target always runs first.
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for c in (int(x) for x in args.connections.split(",")):
                    for what in order:
                        url, key = targets[what]
                        name = url.rsplit("/", 2)[-2]
                        cpu, count = router_cpu_seconds(), answered(config, name)
                        got = wrk(url, c, args.seconds, headers={"Authorization": f"Bearer {key}"})
                        served = answered(config, name) - count
                        got["cpu_us"] = (router_cpu_seconds() - cpu) / max(served, 1) * 1e6
                        rows.setdefault((what, c), []).append(got)
                    # Each target against the baseline measured just before it, this round.
                    for what in targets:
                        mine, base = rows[(what, c)][-1], rows[(BASELINE, c)][-1]
                        ratios.setdefault((what, c), []).append(mine["rps"] / base["rps"])
                        costs.setdefault((what, c), []).append(mine["cpu_us"] / base["cpu_us"])
            shadow = mirrored.get_stats(3600)["versions"]["shadow"].get("shadow", {})
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Endpoint split ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up, "
        f"paired ratios of {args.rounds} rounds, no-op script, key auth)\n"
    )
    print(
        "| target | conns | router CPU µs/request | vs single (median, range) | req/s "
        "| vs single (median, range) | p50 ms | p99 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (what, c), got in sorted(rows.items(), key=lambda kv: (kv[0][1], names.index(kv[0][0]))):
        rps = statistics.median(g["rps"] for g in got)
        paired, cost = ratios[(what, c)], costs[(what, c)]
        print(
            f"| {what} | {c} | {statistics.median(g['cpu_us'] for g in got):.0f} | "
            f"{statistics.median(cost):.3f}x ({min(cost):.2f}-{max(cost):.2f}) | "
            f"{rps:.0f} | {statistics.median(paired):.3f}x ({min(paired):.2f}-{max(paired):.2f}) | "
            f"{statistics.median(g['p50'] for g in got):.2f} | "
            f"{statistics.median(g['p99'] for g in got):.2f} | "
            f"{int(sum(g['errors'] for g in got))} |"
        )
    decided = decision_us()
    first = int(args.connections.split(",")[0])
    base_cpu = statistics.median(g["cpu_us"] for g in rows[(BASELINE, first)])
    print(
        f"\nThe endpoint's own work per request, timed alone: {decided:.2f} µs, "
        f"{decided / base_cpu:.1%} of the router's {base_cpu:.0f} µs CPU per request to a "
        "single service in this run."
    )
    print(
        f"\nShadow: {shadow.get('mirrored', 0)} copies mirrored, {shadow.get('dropped', 0)} "
        f"dropped, {shadow.get('agreed', 0)} of {shadow.get('compared', 0)} compared agreed."
    )


if __name__ == "__main__":
    main()
