"""Peers for ``router_overhead.py --peers``: the same iris model on other servers.

Each peer is installed with uv into its own virtualenv under a cache directory
(``$XDG_CACHE_HOME/modelport-bench/peers``), started with one worker on a free
loopback port, and scored with its own request format: Azure ML's own scoring
server (azureml-inference-server-http), Seldon MLServer, BentoML, Ray Serve,
KServe's Python model server and MLflow's ``models serve``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import free_port

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


def _spawn(
    command: list[str], work: Path, log: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A peer in its own session (``stop`` ends its whole group), its output in ``work/log``."""
    return subprocess.Popen(
        command,
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / log).open("wb"),
        start_new_session=True,
    )


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
    process = _spawn(
        [
            str(venv / "bin" / "azmlinfsrv"),
            "--entry_script",
            str(work / "score.py"),
            "--port",
            str(port),
        ],
        work,
        "azureml.log",
        env,
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
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "host": "127.0.0.1",
                # Inference in the server process: its worker pool crashes at start with
                # the dependency versions installed today ("no current event loop").
                "parallel_workers": 0,
            }
        )
    )
    process = _spawn([str(venv / "bin" / "mlserver"), "start", str(work)], work, "mlserver.log")
    body = {"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    return Running(process, f"http://127.0.0.1:{port}/v2/models/iris/infer", json.dumps(body))


BENTO_SERVICE = """
import os
import bentoml
import joblib
import numpy as np

@bentoml.service(workers=1)
class Iris:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["IRIS_MODEL"])

    @bentoml.api
    def predict(self, data: list[list[float]]) -> list[int]:
        return [int(i) for i in self.model.predict(np.array(data, dtype=float))]
"""


def _bentoml(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    (work / "service.py").write_text(BENTO_SERVICE)
    env = {**os.environ, "IRIS_MODEL": str(model_dir / "model.pkl"), "BENTOML_DO_NOT_TRACK": "1"}
    process = _spawn(
        [
            str(venv / "bin" / "bentoml"),
            "serve",
            "service:Iris",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        work,
        "bentoml.log",
        env,
    )
    return Running(process, f"http://127.0.0.1:{port}/predict", json.dumps({"data": [ROW]}))


RAY_SERVE = """
import os, signal, sys
import joblib
import numpy as np
import ray
from ray import serve
from starlette.requests import Request

@serve.deployment(num_replicas=1)
class Iris:
    def __init__(self, path: str) -> None:
        self.model = joblib.load(path)

    async def __call__(self, request: Request) -> list[int]:
        data = (await request.json())["data"]
        return [int(i) for i in self.model.predict(np.array(data, dtype=float))]

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so ray.shutdown runs at exit
ray.init(include_dashboard=False)
serve.start(http_options={"host": "127.0.0.1", "port": int(os.environ["PORT"])})
serve.run(Iris.bind(os.environ["IRIS_MODEL"]), route_prefix="/")
signal.pause()
"""


def _ray(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    (work / "serve_iris.py").write_text(RAY_SERVE)
    env = {
        **os.environ,
        "IRIS_MODEL": str(model_dir / "model.pkl"),
        "PORT": str(port),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    process = _spawn([str(venv / "bin" / "python"), "serve_iris.py"], work, "ray.log", env)
    return Running(process, f"http://127.0.0.1:{port}/", json.dumps({"data": [ROW]}))


KSERVE_MODEL = """
import os
import joblib
import numpy as np
from kserve import Model, ModelServer

class Iris(Model):
    def __init__(self) -> None:
        super().__init__("iris")
        self.model = joblib.load(os.environ["IRIS_MODEL"])
        self.ready = True

    def predict(self, payload, headers=None):
        rows = np.array(payload["instances"], dtype=float)
        return {"predictions": [int(i) for i in self.model.predict(rows)]}

ModelServer(http_port=int(os.environ["PORT"]), workers=1, enable_grpc=False).start([Iris()])
"""


def _kserve(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    (work / "kserve_iris.py").write_text(KSERVE_MODEL)
    env = {**os.environ, "IRIS_MODEL": str(model_dir / "model.pkl"), "PORT": str(port)}
    process = _spawn([str(venv / "bin" / "python"), "kserve_iris.py"], work, "kserve.log", env)
    body = json.dumps({"instances": [ROW]})
    return Running(process, f"http://127.0.0.1:{port}/v1/models/iris:predict", body)


MLFLOW_SAVE = """
import sys
import joblib
import mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])
"""


def _mlflow(venv: Path, model_dir: Path, work: Path, port: int) -> Running:
    saved = work / "mlflow-model"
    if not saved.exists():
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                MLFLOW_SAVE,
                str(model_dir / "model.pkl"),
                str(saved),
            ],
            check=True,
            capture_output=True,
        )
    path = f"{venv / 'bin'}:{os.environ.get('PATH', '')}"  # so it finds its own uvicorn
    command = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(saved)]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", "1", "--env-manager", "local"]
    process = _spawn(command, work, "mlflow.log", {**os.environ, "PATH": path})
    return Running(process, f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": [ROW]}))


PEERS = [
    Peer("azureml-inference-server-http", ["azureml-inference-server-http", "joblib"], _azureml),
    Peer("mlserver", ["mlserver", "mlserver-sklearn", "joblib"], _mlserver),
    Peer("bentoml", ["bentoml", "joblib"], _bentoml),
    Peer("ray-serve", ["ray[serve]", "joblib"], _ray),
    Peer("kserve", ["kserve", "joblib"], _kserve),
    Peer("mlflow", ["mlflow", "joblib"], _mlflow),
]


def stop(running: Running) -> None:
    """Stop a peer and everything it started (its own process group): TERM, then KILL."""
    pgid = running.process.pid  # every peer starts in its own session
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 30
        try:
            os.killpg(pgid, sig)
            while time.monotonic() < deadline:
                running.process.poll()  # reap the leader so the group can empty
                os.killpg(pgid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            return


def start(peer: Peer, venv: Path, model_dir: Path, work: Path) -> Running:
    """Start a peer and wait until it scores the iris row."""
    work.mkdir(parents=True, exist_ok=True)
    running = peer.start(venv, model_dir, work, free_port())
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
    stop(running)
    raise RuntimeError(f"{peer.name} did not answer within 120 s; see its log in {work}")
