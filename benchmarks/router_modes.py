"""The router's hop, mode by mode, against one replica: paired ratios from one run.

    python benchmarks/router_modes.py [--seconds 5] [--connections 1,8,64] [--rounds 3]

One modelport replica (iris, one row per request, cap 1 as v1's default) listens on
TCP and on a Unix socket, as a local replica does.  One router (key auth) holds four
routes to it: TCP or Unix socket, pipelining on or off.  The bare app (uvicorn +
httptools, predict inline) is the baseline.  Each round measures every
configuration once, in turn, at each concurrency, so slow phases of a shared
machine fall on all of them alike; the table gives medians over rounds and each
configuration's ratio to the bare app measured in the same round.

``unix-batched`` is a second replica whose run() is ``@batched(max_batch_size=32,
max_latency_ms=5)`` (beyond v1): the router lets it hold 32 requests, and it
predicts each batch in one call.  ``unix-batched0`` is a third, the same with
``max_latency_ms=0`` (an idle replica sends what it holds at once).
``noop-batched0`` is that replica with a run() that does no work (one constant output
per input): the ceiling the router and the replica's HTTP side leave for any model
with batches of this size on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from _common import IRIS_ROW, ROOT, free_port, wait_for_port, wrk, wrk_arguments

from modelport.cli.demo import MODEL_NAME, write_files
from modelport.control.controller import key_digest
from modelport.control.router_process import RouterProcess

KEY = "k" * 32  # the service key clients send
INSIDE = "r" * 32  # the replica key the router sends
SCRIPT = ("--entry-script", "score.py")
BATCHED = """
import json

import joblib
import numpy as np

from modelport import Model, batched

CLASSES = ["setosa", "versicolor", "virginica"]


def init():
    global model
    model = joblib.load(Model.get_model_path("iris-classifier") + "/model.pkl")


@batched(max_batch_size=32, max_latency_ms=5)
def run(inputs):
    rows = [json.loads(i)["data"] for i in inputs]
    predicted = model.predict(np.array([r for rs in rows for r in rs], dtype=float))
    out, at = [], 0
    for rs in rows:
        out.append([CLASSES[int(p)] for p in predicted[at : at + len(rs)]])
        at += len(rs)
    return out
"""
NOOP_BATCHED = """
from modelport import batched


def init():
    pass


@batched(max_batch_size=32, max_latency_ms=0)
def run(inputs):
    return [["setosa"]] * len(inputs)
"""
MODES = {  # route name: (Unix socket, pipelining)
    "tcp-nopipe": (False, False),
    "tcp-pipe": (False, True),
    "unix-nopipe": (True, False),
    "unix-pipe": (True, True),
}


def start_replica(
    work: Path, model_dir: Path, script: str | None = None, name: str = "plain"
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The runtime with iris (the demo's score.py, or ``script``), handed a TCP and a
    Unix listening socket."""
    app = work / name
    shutil.copytree(work / "files" / "source", app)
    if script:
        (app / "score.py").write_text(script)
    (app / MODEL_NAME).mkdir()  # Model.get_model_path falls back to the app folder
    shutil.copy(model_dir / "model.pkl", app / MODEL_NAME / "model.pkl")
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    path = work / f"{name}.http"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen(1024)
    env = {
        **os.environ,
        "MODELPORT_LISTEN_FD": str(tcp.fileno()),
        "MODELPORT_UNIX_FD": str(unix.fileno()),
        "MODELPORT_REPLICA_KEY": INSIDE,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport.runtime", "--app-root", str(app), *SCRIPT],
        env=env,
        pass_fds=(tcp.fileno(), unix.fileno()),
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{name}.log").open("wb"),
    )
    tcp.close()
    unix.close()
    wait_for_port(port, "the replica")
    return proc, port, path


def until_ok(url: str, headers: dict[str, str] | None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.post(url, content=IRIS_ROW, headers=headers, timeout=30).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {timeout_s:.0f} s")


def routes(port: int, path: Path, batched: dict[str, tuple[int, Path]]) -> dict[str, object]:
    out: dict[str, object] = {
        name: {
            "auth": True,
            "keyDigests": [key_digest(KEY)],
            "replicas": [["127.0.0.1", bport]],
            "unixSockets": {str(bport): str(bpath)},
            "replicaKey": INSIDE,
            "maxConcurrent": 32,  # what the control plane reads from @batched
            "batching": True,
            "maxWaitMs": 500,
        }
        for name, (bport, bpath) in batched.items()
    }
    for name, (unix, pipelining) in MODES.items():
        out[name] = {
            "auth": True,
            "keyDigests": [key_digest(KEY)],
            "replicas": [["127.0.0.1", port]],
            **({"unixSockets": {str(port): str(path)}} if unix else {}),
            "replicaKey": INSIDE,
            "maxConcurrent": 1,
            "maxWaitMs": 500,
            "pipelining": pipelining,
        }
    return out


def main() -> None:
    args = wrk_arguments(5, "1,8,64", 3)
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    model_dir, _, _ = write_files(work / "files")
    replica, port, path = start_replica(work, model_dir)
    grouping, batched_port, batched_path = start_replica(work, model_dir, BATCHED, "batched")
    eager, eager_port, eager_path = start_replica(
        work, model_dir, BATCHED.replace("max_latency_ms=5", "max_latency_ms=0"), "batched0"
    )
    idle, idle_port, idle_path = start_replica(work, model_dir, NOOP_BATCHED, "noop")
    batched = {
        "unix-batched": (batched_port, batched_path),
        "unix-batched0": (eager_port, eager_path),
        "noop-batched0": (idle_port, idle_path),
    }
    bare_port = free_port()
    bare_args = (str(model_dir), str(bare_port))
    bare = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bare_app.py"), "iris", *bare_args]
    )
    router = RouterProcess(work / "home", "127.0.0.1", 0, "t" * 40)
    loop = asyncio.new_event_loop()
    connections = [int(c) for c in args.connections.split(",")]
    names = ["bare", *MODES, *batched]
    # results[c][name]: one wrk result per round, in the order the rounds ran
    results: dict[int, dict[str, list[dict[str, float]]]] = {
        c: {n: [] for n in names} for c in connections
    }
    try:
        loop.run_until_complete(router.start())
        loop.run_until_complete(router.publish(routes(port, path, batched)))
        wait_for_port(bare_port, "the bare app", timeout_s=120)
        urls = {"bare": f"http://127.0.0.1:{bare_port}/score"}
        urls.update({n: f"{router.url}/api/v1/service/{n}/score" for n in names[1:]})
        auth = {"Authorization": f"Bearer {KEY}"}
        for name in names:  # both replicas have loaded the model (and take their key)
            until_ok(urls[name], None if name == "bare" else auth)
        for _ in range(args.rounds):
            for c in connections:
                for name in names:
                    headers = None if name == "bare" else auth
                    results[c][name].append(wrk(urls[name], c, args.seconds, headers=headers))
        counters = loop.run_until_complete(router.stats()) or {"services": {}}
    finally:
        loop.run_until_complete(router.stop())
        loop.close()
        for proc in (replica, grouping, eager, idle, bare):
            proc.terminate()
            proc.wait(timeout=30)
        for proc, name in (
            (replica, "plain"),
            (grouping, "batched"),
            (eager, "batched0"),
            (idle, "noop"),
        ):
            if proc.returncode not in (0, -15):  # it failed: its log says why
                print((work / f"{name}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    report(args, results)
    print("\nRouter counters per route (errors above are these 503s and 504s):\n")
    for name, svc in counters["services"].items():
        print(
            f"- {name}: pipelined {svc['pipelined']}, pipelineFailed {svc['pipelineFailed']}, "
            f"queueTimeouts {svc['queueTimeouts']}, queueFull {svc['queueFull']}, "
            f"answers {svc['requests']}"
        )


def report(args: object, results: dict[int, dict[str, list[dict[str, float]]]]) -> None:
    rounds = getattr(args, "rounds", 0)
    print(
        f"## Router modes ({date.today()}, {platform.node()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}, "
        f"wrk -t1, {getattr(args, 'seconds', 0)} s "
        f"after 2 s warm-up, {rounds} rounds, iris, cap 1)\n"
    )
    print("| conns | route | median req/s | median of per-round ratio to bare | p50 ms | errors |")
    print("|---|---|---|---|---|---|")
    for c, by_name in results.items():
        bare = by_name["bare"]
        for name, runs in by_name.items():
            ratios = [r["rps"] / b["rps"] for r, b in zip(runs, bare, strict=True)]
            print(
                f"| {c} | {name} | {statistics.median(r['rps'] for r in runs):.0f} | "
                f"{statistics.median(ratios):.2f}x | "
                f"{statistics.median(r['p50'] for r in runs):.2f} | "
                f"{int(sum(r['errors'] for r in runs))} |"
            )


if __name__ == "__main__":
    main()
