"""Endpoint split: what dealing requests between versions costs the router, one run.

    python benchmarks/endpoint_split.py [--seconds 10] [--connections 3,24] [--rounds 2]

Three replicas of a no-op script, reached three ways through the same router (key auth
on): a single service with three replicas (the baseline), an endpoint with three
versions of one replica each at 34/33/33 %, and that endpoint with a fourth version
receiving a 10 % shadow copy of the traffic.  Each is measured with wrk (1 thread) in
alternating rounds, so drift over the run falls on all of them; the median of the
rounds is shown with its ratio to the baseline.  Needs wrk.
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

from _common import start_server, wrk

from modelport import AksEndpoint, AksWebservice, InferenceConfig, Model, Workspace

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="3,24")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    (work / "noop").mkdir()
    (work / "noop" / "score.py").write_text(textwrap.dedent(NOOP))
    (work / "model.txt").write_text("none")
    server, config = start_server(work / "home")
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
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
            for endpoint in (split, mirrored):
                endpoint.wait_for_deployment()
            targets = {
                "single service, 3 replicas": (service.scoring_uri, service.get_keys()[0]),
                "endpoint, 3 versions 34/33/33": (split.scoring_uri, split.get_keys()[0]),
                "endpoint, 3 versions + 10 % shadow": (
                    mirrored.scoring_uri,
                    mirrored.get_keys()[0],
                ),
            }
            for _ in range(args.rounds):
                for c in (int(x) for x in args.connections.split(",")):
                    for what, (url, key) in targets.items():
                        got = wrk(url, c, args.seconds, headers={"Authorization": f"Bearer {key}"})
                        rows.setdefault((what, c), []).append(got)
            shadow = mirrored.get_stats(3600)["versions"]["shadow"].get("shadow", {})
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Endpoint split ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up, "
        f"median of {args.rounds} alternating rounds, no-op script, key auth)\n"
    )
    print("| target | conns | req/s | vs single | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    baseline: dict[int, float] = {}
    for (what, c), got in rows.items():
        rps = statistics.median(g["rps"] for g in got)
        baseline.setdefault(c, rps)
        print(
            f"| {what} | {c} | {rps:.0f} | {rps / baseline[c]:.3f}x | "
            f"{statistics.median(g['p50'] for g in got):.2f} | "
            f"{statistics.median(g['p99'] for g in got):.2f} | "
            f"{int(sum(g['errors'] for g in got))} |"
        )
    print(
        f"\nShadow: {shadow.get('mirrored', 0)} copies mirrored, {shadow.get('dropped', 0)} "
        f"dropped, {shadow.get('agreed', 0)} of {shadow.get('compared', 0)} compared agreed."
    )


if __name__ == "__main__":
    main()
