"""The replica's three input paths, each against the bare app, in one run.

    python benchmarks/replica_paths.py [--seconds 5] [--connections 1,8] [--rounds 3]
                                       [--src DIR ...] [--label NAME ...]

A no-op ``run()`` for each way v1 hands a request to ``run()``: undecorated
(``plain``: the body as a string), ``@input_schema`` (``schema``: the JSON body's keys
as arguments) and ``@rawhttp`` (``raw``: the whole request).  Two measurements:

- over HTTP, ``python -m modelport.runtime`` served directly (no router, no control
  plane) against the bare uvicorn + httptools app of this folder, the bare app
  measured just before each replica so that each ratio pairs neighbours in time;
  medians over ``--rounds``;
- in process, the runtime's own cost per request: ``Dataplane.handle`` called in a
  loop on one parsed request (no sockets, no other process), in CPU time of the
  thread, best of five.

``--src`` takes one or more source folders holding a ``modelport`` package (default:
this checkout's ``src``): to compare two versions of the runtime on one machine in
one run, export the older one (``git archive <rev> src | tar -x -C /tmp/old``) and
pass both; their measurements are interleaved so drift on a shared machine hits
both alike.  Needs wrk and inference-schema.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path

from _common import ROOT, free_port, wait_for_port, wrk

BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'

# Run with PYTHONPATH set to one runtime version: prints microseconds per request.
IN_PROCESS = """
import asyncio, os, sys, time
from pathlib import Path
from modelport.httpserver import Request
from modelport.runtime.dataplane import Dataplane
from modelport.runtime.script import EntryScript, InlineInvoker

app = Path(sys.argv[1])
os.environ["AML_APP_ROOT"] = str(app)
script = EntryScript(app / "score.py", None)
script.call_init()
dataplane = Dataplane(script, InlineInvoker(), 60000, "bench")
headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
request = Request("POST", "/score", "", headers, sys.argv[2].encode())


async def loop(n):
    for _ in range(n):
        response = await dataplane.handle(request)
    assert response.status == 200, response.body


n, best = 20000, float("inf")
for _ in range(5):
    started = time.thread_time()  # CPU time: other load on the machine does not count
    asyncio.run(loop(n))
    best = min(best, time.thread_time() - started)
print(best / n * 1e6)
"""

SCRIPTS = {
    "plain": """
        def init():
            pass

        def run(raw_data):
            return raw_data
    """,
    "schema": """
        from inference_schema.schema_decorators import input_schema
        from inference_schema.parameter_types.standard_py_parameter_type import (
            StandardPythonParameterType,
        )

        def init():
            pass

        @input_schema("data", StandardPythonParameterType([[5.1, 3.5, 1.4, 0.2]]))
        def run(data):
            return data
    """,
    "raw": """
        from modelport.runtime.api import rawhttp

        def init():
            pass

        @rawhttp
        def run(request):
            return request.get_json()["data"]
    """,
}


def start_replica(src: Path, app: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelport.runtime",
            "--app-root",
            str(app),
            "--entry-script",
            "score.py",
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(src), "AZUREML_LOG_LEVEL": "WARNING"},
    )
    wait_for_port(port, f"the replica for {app.name}")
    return proc, f"http://127.0.0.1:{port}/score"


def start_bare(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    script = ROOT / "benchmarks" / "bare_app.py"
    proc = subprocess.Popen([sys.executable, str(script), "noop", str(work), str(port)])
    wait_for_port(port, "the bare app")
    return proc, f"http://127.0.0.1:{port}/score"


def in_process_us(src: Path, app: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(app), BODY],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--src", nargs="+", default=[str(ROOT / "src")])
    parser.add_argument("--label", nargs="+", help="one name per --src (default: the paths)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    sources = [Path(s).resolve() for s in args.src]
    labels = args.label or [str(s) for s in sources]
    work = Path(tempfile.mkdtemp(prefix="modelport-paths-"))
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, str], str] = {}
    apps: dict[tuple[str, str], Path] = {}
    http: dict[tuple[str, int, str], list[tuple[dict[str, float], dict[str, float]]]] = {}
    micro: dict[tuple[str, str], float] = {}
    connections = [int(x) for x in args.connections.split(",")]
    try:
        bare_proc, bare_url = start_bare(work)
        procs.append(bare_proc)
        for label, src in zip(labels, sources, strict=True):
            for path, script in SCRIPTS.items():
                app = apps[label, path] = work / f"{label.replace('/', '_')}-{path}"
                app.mkdir()
                (app / "score.py").write_text(textwrap.dedent(script))
                proc, urls[label, path] = start_replica(src, app)
                procs.append(proc)
        for _ in range(args.rounds):
            for c in connections:
                for path in SCRIPTS:
                    for label in labels:
                        bare = wrk(bare_url, c, args.seconds, body=BODY)
                        replica = wrk(urls[label, path], c, args.seconds, body=BODY)
                        http.setdefault((path, c, label), []).append((bare, replica))
        for path in SCRIPTS:
            for label, src in zip(labels, sources, strict=True):
                micro[path, label] = in_process_us(src, apps[label, path])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Replica input paths ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up, "
        f"median of {args.rounds} rounds)\n"
    )
    print(
        "| path | conns | runtime | bare req/s | replica req/s | replica/bare | "
        "p50 bare / replica ms | p99 bare / replica ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (path, c, label), pairs in http.items():
        b = {k: statistics.median([bare[k] for bare, _ in pairs]) for k in ("rps", "p50", "p99")}
        r = {k: statistics.median([rep[k] for _, rep in pairs]) for k in ("rps", "p50", "p99")}
        ratio = statistics.median([rep["rps"] / bare["rps"] for bare, rep in pairs])
        errors = sum(bare["errors"] + rep["errors"] for bare, rep in pairs)
        print(
            f"| {path} | {c} | {label} | {b['rps']:.0f} | {r['rps']:.0f} | {ratio:.2f}x | "
            f"{b['p50']:.2f} / {r['p50']:.2f} | {b['p99']:.2f} / {r['p99']:.2f} | "
            f"{int(errors)} |"
        )
    print("\n### In process: `Dataplane.handle` per request, CPU time (best of 5 x 20000)\n")
    print("| path | " + " | ".join(f"{label} µs" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for path in SCRIPTS:
        cells = " | ".join(f"{micro[path, label]:.2f}" for label in labels)
        print(f"| {path} | {cells} |")


if __name__ == "__main__":
    main()
