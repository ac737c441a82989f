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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelport import InferenceConfig, Model, Webservice, Workspace  # noqa: E402
from modelport.cli.demo import write_files  # noqa: E402
from modelport.spec.deployment import deployment_config_from_document  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
wrk.headers["Content-Type"] = "application/json"
%s
"""


def start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport", "up", "--port", "0", "--router-port", "0"],
        env={**env, "MODELPORT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=(home.parent / "server.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            config = json.loads((home / "config.json").read_text())
            if config.get("pid") == proc.pid:
                return proc, config
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start; see server.log")


def timed_deploy(ws: Workspace, name: str, model: Model, ic: Path, dc: Path) -> float:
    config = deployment_config_from_document(json.loads(dc.read_text()), dc.name)
    started = time.perf_counter()
    service = Model.deploy(ws, name, [model], InferenceConfig.from_file(ic), config)
    service.wait_for_deployment()
    return time.perf_counter() - started


def wrk(url: str, connections: int, seconds: int, header: str = "") -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % header)
    base = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", script.name, url]
    subprocess.run([*base[:3], "-d2s", *base[3:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*base[:3], f"-d{seconds}s", *base[3:]], capture_output=True, text=True,
                         check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": _ms(out, "50%"), "p99": _ms(out, "99%"),
            "errors": float(errors.group(1)) if errors else 0.0,
            "socket_errors": 1.0 if socket_errors else 0.0}


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


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
            rows = []
            for c in (int(x) for x in args.connections.split(",")):
                direct = wrk(replica, c, args.seconds)
                routed = wrk(service.scoring_uri, c, args.seconds,
                             f'wrk.headers["Authorization"] = "Bearer {key}"')
                rows.append((c, direct, routed))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"## Deploy and score ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()})\n")
    print("| deploy to Healthy (2 replicas, scikit-learn env) | seconds |\n|---|---|")
    print(f"| cold environment cache (uv downloads the packages) | {cold:.1f} |")
    print(f"| warm environment cache | {warm:.1f} |\n")
    print(f"iris, one row per request, wrk -t1, {args.seconds} s after a 2 s warm-up, 1 replica:\n")
    print("| connections | direct req/s | p50 ms | p99 ms | router req/s | p50 ms | p99 ms | "
          "router/direct | added p50 ms | errors |\n|---|---|---|---|---|---|---|---|---|---|")
    for c, d, r in rows:
        print(f"| {c} | {d['rps']:.0f} | {d['p50']:.2f} | {d['p99']:.2f} | {r['rps']:.0f} | "
              f"{r['p50']:.2f} | {r['p99']:.2f} | {r['rps'] / d['rps']:.2f}x | "
              f"{r['p50'] - d['p50']:+.2f} | {int(d['errors'] + r['errors'])} |")


if __name__ == "__main__":
    main()
