"""The replica's three input paths, each against the bare app, in one run.

    python benchmarks/replica_paths.py [--seconds 5] [--connections 1,8] [--src DIR ...]

A no-op ``run()`` served by ``python -m modelport.runtime`` directly (no router, no
control plane) for each way v1 hands a request to ``run()``: undecorated (``plain``:
the body as a string), ``@input_schema`` (``schema``: the JSON body's keys as
arguments) and ``@rawhttp`` (``raw``: the whole request).  The baseline is the bare
uvicorn + httptools app of this folder, measured in the same run.

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
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path

from _common import ROOT, free_port, wait_for_port, wrk

BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="1,8")
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
    rows = []
    try:
        bare_proc, bare_url = start_bare(work)
        procs.append(bare_proc)
        for label, src in zip(labels, sources, strict=True):
            for path, script in SCRIPTS.items():
                app = work / f"{label.replace('/', '_')}-{path}"
                app.mkdir()
                (app / "score.py").write_text(textwrap.dedent(script))
                proc, urls[label, path] = start_replica(src, app)
                procs.append(proc)
        for c in (int(x) for x in args.connections.split(",")):
            for path in SCRIPTS:
                bare = wrk(bare_url, c, args.seconds, body=BODY)
                for label in labels:
                    replica = wrk(urls[label, path], c, args.seconds, body=BODY)
                    rows.append((path, c, label, bare, replica))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Replica input paths ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s warm-up)\n"
    )
    print(
        "| path | conns | runtime | bare req/s | replica req/s | replica/bare | "
        "p50 bare / replica ms | p99 bare / replica ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path, c, label, b, r in rows:
        print(
            f"| {path} | {c} | {label} | {b['rps']:.0f} | {r['rps']:.0f} | "
            f"{r['rps'] / b['rps']:.2f}x | {b['p50']:.2f} / {r['p50']:.2f} | "
            f"{b['p99']:.2f} / {r['p99']:.2f} | {int(b['errors'] + r['errors'])} |"
        )


if __name__ == "__main__":
    main()
