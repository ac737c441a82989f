"""Helpers shared by the benchmark scripts: a throwaway server, free ports, and wrk."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

REPLICA_KEY = "x-modelport-replica-key"  # the header a replica takes from the router only
IRIS_ROW = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, what: str, timeout_s: float = 30) -> None:
    """Return once something accepts connections on the loopback port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def start_server(
    home: Path, env: dict[str, str] | None = None, workers: int = 1
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """``modelport up`` on free ports in ``home``; returns the process and its config."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "modelport", "up", "--port", "0", "--router-port", "0"]
    proc = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env={**(env or os.environ), "MODELPORT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=(home / "server.log").open("wb"),
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
    raise SystemExit(f"the server did not start; see {home / 'server.log'}")


def wrk(
    url: str,
    connections: int,
    seconds: int,
    body: str = IRIS_ROW,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """One thread, ``connections`` connections, 2 s warm-up then ``seconds``."""
    lua = [
        'wrk.method = "POST"',
        f"wrk.body = '{body}'",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lua += [f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lua) + "\n")
    base = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", script.name]
    try:
        subprocess.run([*base, "-d2s", url], capture_output=True, check=True)
        out = subprocess.run(
            [*base, f"-d{seconds}s", url], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    # A connection reset or timed out (a proxy's) is an error as much as a 5xx is.
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "rps": rps,
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "errors": float(non2xx.group(1) if non2xx else 0)
        + float(sum(int(n) for n in sockets.groups()) if sockets else 0),
    }


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"wrk output not understood:\n{text}")
    return match.group(1)


def _ms(out: str, pct: str) -> float:
    match = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        raise SystemExit(f"wrk output has no {pct} latency:\n{out}")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


def wrk_arguments(seconds: int, connections: str = "8", rounds: int = 3) -> argparse.Namespace:
    """``--seconds``, ``--connections`` and ``--rounds``; stops at once without wrk."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=seconds)
    parser.add_argument("--connections", default=connections)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return args


def scripts_folder(scripts: dict[str, str]) -> Path:
    """A throwaway folder with one source folder per script (``<name>/score.py``)."""
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    for name, script in scripts.items():
        (work / name).mkdir()
        (work / name / "score.py").write_text(textwrap.dedent(script))
    return work


def replica_headers(home: Path, service: str) -> dict[str, str]:
    """What the router adds to reach a local replica of ``service`` directly."""
    from modelport.compute.local.target import derive_replica_key
    from modelport.store.secrets import SecretBox

    key = derive_replica_key(SecretBox.for_workspace(home), service)
    return {REPLICA_KEY: key}
