"""Deploy time and scoring throughput of the demo model, measured in one run.

    python benchmarks/deploy_and_score.py [--seconds 10] [--connections 1,8,64]

1. Seconds from ``Model.deploy`` to Healthy for the demo's scikit-learn service,
   with a cold environment cache (fresh modelport and uv caches: the packages are
   downloaded) and with a warm one (the built environment is reused).
2. Requests/s and p50/p99 latency of the iris model with ``wrk`` (1 thread), straight
   to the replica and through the router (key auth on), same replica, same run.

Needs ``wrk`` (apt-get install wrk) and scikit-learn (pip install -e '.[demo]').
It starts its own server in a temporary MODELPORT_HOME and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from _common import replica_headers, start_server, wrk

from modelport import InferenceConfig, Model, Webservice, Workspace
from modelport.cli.demo import write_files
from modelport.spec.deployment import deployment_config_from_document


def timed_deploy(ws: Workspace, name: str, model: Model, ic: Path, dc: Path) -> float:
    config = deployment_config_from_document(json.loads(dc.read_text()), dc.name)
    started = time.perf_counter()
    service = Model.deploy(ws, name, [model], InferenceConfig.from_file(ic), config)
    service.wait_for_deployment()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="1,8,64")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "UV_CACHE_DIR": str(work / "uv")}
    os.environ.update(env)  # the builder runs in the server, which inherits these
    proc, config = start_server(work / "home", env)
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model_dir, ic, dc = write_files(work / "files")
            model = Model.register(ws, model_dir, "iris-classifier")
            cold = timed_deploy(ws, "iris-cold", model, ic, dc)
            warm = timed_deploy(ws, "iris-warm", model, ic, dc)
            for name in ("iris-cold", "iris-warm"):
                Webservice(ws, name).delete()
            one = json.loads(dc.read_text()) | {"numReplicas": 1}
            dc.write_text(json.dumps(one))
            timed_deploy(ws, "iris-bench", model, ic, dc)
            service = Webservice(ws, "iris-bench")
            key = service.get_keys()[0]
            replica = f"http://127.0.0.1:{service.serialize()['replicas'][0]['port']}/score"
            inside = replica_headers(work / "home", "iris-bench")  # as the router sends it
            rows = []
            for c in (int(x) for x in args.connections.split(",")):
                direct = wrk(replica, c, args.seconds, headers=inside)
                routed = wrk(
                    service.scoring_uri, c, args.seconds, headers={"Authorization": f"Bearer {key}"}
                )
                rows.append((c, direct, routed))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Deploy and score ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()})\n"
    )
    print("| deploy to Healthy (2 replicas, scikit-learn env) | seconds |\n|---|---|")
    print(f"| cold environment cache (uv downloads the packages) | {cold:.1f} |")
    print(f"| warm environment cache | {warm:.1f} |\n")
    print(f"iris, one row per request, wrk -t1, {args.seconds} s after a 2 s warm-up, 1 replica:\n")
    print(
        "| connections | direct req/s | p50 ms | p99 ms | router req/s | p50 ms | p99 ms | "
        "router/direct | added p50 ms | errors |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for c, d, r in rows:
        print(
            f"| {c} | {d['rps']:.0f} | {d['p50']:.2f} | {d['p99']:.2f} | {r['rps']:.0f} | "
            f"{r['p50']:.2f} | {r['p99']:.2f} | {r['rps'] / d['rps']:.2f}x | "
            f"{r['p50'] - d['p50']:+.2f} | {int(d['errors'] + r['errors'])} |"
        )


if __name__ == "__main__":
    main()
