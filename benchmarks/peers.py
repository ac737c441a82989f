"""Peers for ``router_overhead.py --peers``: the same iris model on other servers.

Each peer is installed with uv into its own virtualenv under a cache directory
(``$XDG_CACHE_HOME/modelport-bench/peers``), started with one worker on a free
loopback port, and scored with its own request format.  So far: Azure ML's own
scoring server (azureml-inference-server-http) and Seldon MLServer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

SKLEARN_PIN = "scikit-learn=={version}"
ROW = [5.1, 3.5, 1.4, 0.2]

AZUREML_SCORE = """
import json, os
import joblib
import numpy as np

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    return [int(i) for i in model.predict(data)]
"""


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    body: str


@dataclass
class Peer:
    name: str
    packages: list[str]
    start: Callable[[Path, Path, Path, int], Running]  # (venv, model dir, work dir, port)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelport-bench" / "peers"


def install(peer: Peer, sklearn_version: str) -> Path:
    from uv import find_uv_bin

    venv = cache_dir() / peer.name
    marker = venv / ".installed"
    wanted = " ".join([*peer.packages, SKLEARN_PIN.format(version=sklearn_version)])
    if marker.exists() and marker.read_text() == wanted:
        return venv
    uv = find_uv_bin()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "-q", "--clear", "--python", python, str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *wanted.split()],
        check=True,
    )
    marker.write_text(wanted)
    return venv


def _azureml(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    (work / "score.py").write_text(AZUREML_SCORE)
    env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir), "WORKER_COUNT": "1"}
    process = subprocess.Popen(
        [
            str(venv / "bin" / "azmlinfsrv"),
            "--entry_script",
            str(work / "score.py"),
            "--port",
            str(port),
        ],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / "azureml.log").open("wb"),
    )
    return Running(process, f"http://127.0.0.1:{port}/score", json.dumps({"data": [ROW]}))


def _mlserver(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    model = work / "iris"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model_dir / "model.pkl")},
            }
        )
    )
    (work / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": _free_port(),
                "metrics_port": _free_port(),
                "host": "127.0.0.1",
                # Inference in the server process: its worker pool crashes at start with
                # the dependency versions installed today ("no current event loop").
                "parallel_workers": 0,
            }
        )
    )
    process = subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(work)],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / "mlserver.log").open("wb"),
    )
    body = {"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    return Running(process, f"http://127.0.0.1:{port}/v2/models/iris/infer", json.dumps(body))


PEERS = [
    Peer("azureml-inference-server-http", ["azureml-inference-server-http", "joblib"], _azureml),
    Peer("mlserver", ["mlserver", "mlserver-sklearn", "joblib"], _mlserver),
]
NOT_YET = ["bentoml", "ray[serve]", "kserve", "mlflow"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(peer: Peer, venv: Path, model_dir: Path, work: Path) -> Running:
    """Start a peer and wait until it scores the iris row."""
    work.mkdir(parents=True, exist_ok=True)
    running = peer.start(venv, model_dir, work, _free_port())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited; see its log in {work}")
        try:
            answer = httpx.post(
                running.url,
                content=running.body,
                headers={"content-type": "application/json"},
                timeout=5,
            )
            if answer.status_code == 200:
                return running
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    running.process.terminate()
    raise RuntimeError(f"{peer.name} did not answer within 120 s; see its log in {work}")
