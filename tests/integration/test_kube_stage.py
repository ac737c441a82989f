"""A pod's staging step against a real control plane, run as its manifest says.

One server deploys a service on the local target; the staging step then runs as a
process with the environment of the init container modelport renders for that
service (the volumes mapped to folders here), fetching from the server with a
minted credential.  Its app folder must equal the local target's, and the replica
command of the rendered score container must serve from it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.compute.kubernetes import credential, manifests, stage
from modelport.compute.kubernetes.credential import Scope
from modelport.compute.kubernetes.release import Release
from modelport.compute.kubernetes.settings import ClusterSettings
from modelport.compute.plan import plan, replica_environment
from modelport.spec.environment import EnvironmentSpec, pip_environment_document
from tests.conftest import ServerProcess, wait_for

SCORE = b"""\
import os


def init():
    global WEIGHTS
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "net", "w.bin")) as f:
        WEIGHTS = f.read()


def run(raw):
    return {"weights": WEIGHTS, "dir": os.environ["AZUREML_MODEL_DIR"]}
"""
HELPER = b"VALUE = 1\n"
EVIL = b"def init():\n    raise SystemExit('not what was uploaded')\n"
DEPLOY = {"computeType": "aks", "numReplicas": 1, "autoScaler": {"autoscaleEnabled": False}}
ENVIRONMENT = EnvironmentSpec.model_validate(pip_environment_document("stage-env", ""))


@dataclass
class Deployed:
    server: ServerProcess
    api: httpx.Client
    spec: dict[str, Any]
    snapshot: str
    blobs: dict[str, str]

    @property
    def local_app(self) -> Path:
        return self.server.home / "services" / "staged" / "1" / "app"

    def token(self, scope: Scope | None = None, now: float | None = None) -> str:
        key = credential.signing_key(self.server.home)
        own = Scope("staged", 1, self.snapshot, ("m:1",))
        return credential.mint(key, scope or own, now=now, ttl_s=600).token


def _put(api: httpx.Client, content: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(content).hexdigest()
    assert api.put(f"/api/v1/blobs/{digest}", content=content).status_code == 201
    return {"sha256": digest, "size": len(content)}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    server = ServerProcess(tmp_path_factory.mktemp("staging") / "home")
    api = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60
    )
    try:
        weights = _put(api, b"weights")
        model = {
            "name": "m",
            "kind": "folder",
            "basename": "net",
            "files": [
                {"path": "net/w.bin", **weights},
                {"path": "net/copy/w.bin", **weights},  # one blob, two files
                {"path": "net/empty", **_put(api, b"")},
            ],
        }
        assert api.post("/api/v1/models", json=model).status_code == 201
        score, helper = _put(api, SCORE), _put(api, HELPER)
        files = [{"path": "score.py", **score}, {"path": "lib/helper.py", **helper}]
        sid = api.post("/api/v1/snapshots", json={"basename": "src", "files": files}).json()["id"]
        spec = {
            "name": "staged",
            "models": ["m:1"],
            "inferenceConfig": {"entryScript": "score.py", "sourceDirectory": "src"},
            "snapshot": sid,
            "deploymentConfig": DEPLOY,
        }
        assert api.post("/api/v1/services", json=spec).status_code in (200, 201, 202)
        wait_for(
            lambda: api.get("/api/v1/services/staged").json()["state"] == "Healthy",
            timeout_s=120,
            what="the local service to be Healthy",
        )
        blobs = {"weights": weights["sha256"], "score": score["sha256"]}
        yield Deployed(server, api, spec, sid, blobs)
    finally:
        api.close()
        server.stop()


class Pod:
    """The rendered pod's containers, run here as processes: each volume is a folder,
    each secretKeyRef the minted token, ``status.podIP`` a loopback address."""

    def __init__(self, root: Path, deployed: Deployed, environment: EnvironmentSpec | None) -> None:
        the_plan = plan({**deployed.spec, "deploymentConfig": DEPLOY})
        self.release = Release(
            service="staged",
            generation=1,
            plan=the_plan,
            entry_script="score.py",
            source_basename="src",
            models=(("m", 1),),
            variables=replica_environment(the_plan, "staged"),
            environment=environment,
        )
        cluster = ClusterSettings(namespace="t", workspace="w", stage_url=deployed.server.url)
        self.deployment = manifests.deployment(self.release, cluster, "uid")
        self.root = root
        self.ip = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"

    def container(self, name: str) -> dict[str, Any]:
        spec = self.deployment["spec"]["template"]["spec"]
        return next(c for c in spec["initContainers"] + spec["containers"] if c["name"] == name)

    def folder(self, volume: str) -> Path:
        return self.root / volume

    def _local(self, text: str, container: dict[str, Any]) -> str:
        mounts = sorted(container["volumeMounts"], key=lambda m: -len(m["mountPath"]))
        for m in mounts:
            text = text.replace(m["mountPath"], str(self.folder(m["name"])))
        return text.replace("$(POD_IP)", self.ip).replace("$$", "$")

    def env(self, name: str, token: str) -> dict[str, str]:
        container = self.container(name)
        # the image's own environment: this machine's (its certificates, proxy, uv cache)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
        env["UV_CACHE_DIR"] = uv_cache  # warm wheels, as a node's cache would be
        for entry in container["env"]:
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                env[entry["name"]] = token
            elif "fieldRef" in source:
                env[entry["name"]] = self.ip
            else:
                env[entry["name"]] = self._local(entry["value"], container)
        return env

    def command(self, name: str) -> list[str]:
        container = self.container(name)
        argv = [*container["command"], *container.get("args", [])]
        if argv[0] == "python":
            argv[0] = sys.executable  # the image's Python
        return [self._local(a, container) for a in argv]

    def stage(self, token: str, **changes: str) -> subprocess.CompletedProcess[str]:
        for volume in ("app", "runtime", "envs"):
            self.folder(volume).mkdir(parents=True, exist_ok=True)
        env = {**self.env("stage", token), **changes}
        return subprocess.run(
            self.command("stage"), env=env, capture_output=True, text=True, timeout=300
        )


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every folder and file under ``root`` (not the bytecode a replica leaves)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


def test_the_staged_app_equals_the_local_layout_and_serves(
    deployed: Deployed, tmp_path: Path
) -> None:
    pod = Pod(tmp_path, deployed, ENVIRONMENT)
    done = pod.stage(deployed.token())
    assert done.returncode == 0, done.stderr
    assert "staged 5 file(s), 4 fetched" in done.stdout
    staged = _tree(pod.folder("app"))
    assert staged == _tree(deployed.local_app)
    assert "azureml-models/m/1/net/copy/w.bin" in staged
    assert (pod.folder("runtime") / "modelport" / "runtime" / "__main__.py").is_file()
    _serve(pod)


def _serve(pod: Pod) -> None:
    """The score container's command, in the built virtualenv, answers from the app."""
    command = pod.command("score")
    assert Path(command[0]).is_relative_to(pod.folder("envs"))
    replica = subprocess.Popen(
        command,
        env=pod.env("score", "unused"),
        cwd=pod.folder("app"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = f"http://{pod.ip}:5002/"
        wait_for(lambda: _answers(health, replica), timeout_s=60, what="the replica's health port")
        response = httpx.post(f"http://{pod.ip}:5001/score", json={"x": 1}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "weights": "weights",
            "dir": str(pod.folder("app") / "azureml-models" / "m" / "1"),
        }
    finally:
        replica.send_signal(signal.SIGTERM)
        try:
            replica.wait(timeout=30)
        finally:
            if replica.poll() is None:
                replica.kill()
                replica.wait()


def _answers(url: str, replica: subprocess.Popen[str]) -> bool:
    if replica.poll() is not None:
        raise AssertionError(
            f"the replica exited: {replica.stderr.read() if replica.stderr else ''}"
        )
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_restarted_staging_step_starts_clean(deployed: Deployed, tmp_path: Path) -> None:
    pod = Pod(tmp_path, deployed, None)
    (pod.folder("app") / "azureml-models").mkdir(parents=True)
    (pod.folder("app") / "leftover.part").write_text("half")
    done = pod.stage(deployed.token())
    assert done.returncode == 0, done.stderr
    assert _tree(pod.folder("app")) == _tree(deployed.local_app)


def test_a_tampered_blob_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    blob = deployed.server.home / "artifacts" / "sha256" / deployed.blobs["score"][:2]
    blob = blob / deployed.blobs["score"]
    original = blob.read_bytes()
    try:
        blob.write_bytes(EVIL)
        done = Pod(tmp_path, deployed, None).stage(deployed.token())
    finally:
        blob.write_bytes(original)
    assert done.returncode == stage.CORRUPT, done.stderr
    wanted = deployed.blobs["score"]
    assert done.stderr.strip().splitlines()[-1] == (
        f"staging failed: src/score.py: the content received has sha256 "
        f"{hashlib.sha256(EVIL).hexdigest()}, "
        f"not {wanted}; refusing to stage it"
    )
    assert not (tmp_path / "app" / "src" / "score.py").exists()
    assert not list((tmp_path / "app").rglob("*.part"))


def test_another_generation_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    done = Pod(tmp_path, deployed, None).stage(deployed.token(), MODELPORT_GENERATION="2")
    assert done.returncode == stage.REFUSED, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "staging failed: the control plane refused /api/v1/staging/staged/2: this credential "
        "stages service staged generation 1, not service staged generation 2 "
        "(HTTP 404, not_found)"
    )


def test_an_expired_credential_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    token = deployed.token(now=1_000_000_000)
    done = Pod(tmp_path, deployed, None).stage(token)
    assert done.returncode == stage.REFUSED, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "staging failed: the control plane refused /api/v1/staging/staged/1: the staging "
        "credential of service staged generation 1 expired at 2001-09-09T01:56:40+00:00"
    )
    assert last.endswith("(HTTP 401, unauthorized)")


def test_the_admin_token_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    done = Pod(tmp_path, deployed, None).stage(deployed.server.token)
    assert done.returncode == stage.REFUSED, done.stderr
    assert "not a valid staging credential" in done.stderr


def test_a_missing_setting_is_named(deployed: Deployed, tmp_path: Path) -> None:
    done = Pod(tmp_path, deployed, None).stage(deployed.token(), MODELPORT_STAGE_URL="")
    assert done.returncode == stage.SETTINGS
    assert done.stderr.strip() == "staging failed: MODELPORT_STAGE_URL is not set"
    shutil.rmtree(tmp_path / "app", ignore_errors=True)
