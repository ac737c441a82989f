"""The ``kube_cluster`` fixture: one real test cluster per test session.

The cluster is ``scripts/kube-harness start`` in a temporary folder, stopped (and checked
to have left no process behind) at the end of the session. Its binaries are found with
``scripts/kube-harness bin``; when they have not been built the fixture fails and says
how to build them: a test needing Kubernetes is never silently skipped.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import Client, KubeConfig

from tests.kube.processes import ProcessRecord, pids_in_mount_namespaces, records_from_json

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kube-harness"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 120


@dataclass(frozen=True)
class KubeCluster:
    dir: Path
    kubeconfig: Path
    server: str
    token: str
    ca: Path
    nodes: list[str]

    @classmethod
    def load(cls, folder: Path) -> KubeCluster:
        info = json.loads((folder / "cluster.json").read_text())
        return cls(
            dir=folder,
            kubeconfig=Path(info["kubeconfig"]),
            server=info["server"],
            token=info["token"],
            ca=Path(info["ca"]),
            nodes=list(info["nodes"]),
        )

    def client(self) -> Client:
        return Client(KubeConfig.from_file(self.kubeconfig), trust_env=False)

    def http(self) -> httpx.Client:
        """Plain HTTP to the API server (for what lightkube does not offer, e.g. previous logs)."""
        return httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=str(self.ca)),
            trust_env=False,
        )

    def processes(self) -> list[ProcessRecord]:
        """The processes ``start`` launched (etcd, the control plane, the node agent)."""
        return records_from_json(json.loads((self.dir / "pids.json").read_text())["processes"])

    def pod_namespaces(self) -> set[str]:
        """Mount namespaces of the container runs the node agent has live now."""
        items: list[dict[str, Any]] = json.loads(
            (self.dir / "agent" / "processes.json").read_text()
        )
        return {str(i["mount_namespace"]) for i in items if i.get("mount_namespace")}


def harness_binaries() -> Path:
    found = subprocess.run([str(SCRIPT), "bin"], capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip():
        pytest.fail(
            "the Kubernetes test cluster is not built: run `scripts/kube-harness deps` and "
            "`scripts/kube-harness build` (about 10 minutes, once per machine; .ci/run does it)",
            pytrace=False,
        )
    return Path(found.stdout.strip())


def _harness(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_PYTHON": sys.executable}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def start_cluster(folder: Path, *options: str) -> KubeCluster:
    harness_binaries()
    started = _harness("start", str(folder), *options, timeout_s=START_TIMEOUT_S)
    if started.returncode != 0:
        pytest.fail(
            f"scripts/kube-harness start failed:\n{started.stdout}{started.stderr}", pytrace=False
        )
    return KubeCluster.load(folder)


def stop_cluster(cluster: KubeCluster) -> None:
    """Stop the cluster and check that nothing it started still runs."""
    namespaces = cluster.pod_namespaces()
    records = cluster.processes()
    stopped = _harness("stop", str(cluster.dir), timeout_s=STOP_TIMEOUT_S)
    assert stopped.returncode == 0, f"kube-harness stop failed: {stopped.stdout}{stopped.stderr}"
    alive = [r for r in records if r.alive()]
    assert not alive, f"still running after kube-harness stop: {alive}"
    leftovers = pids_in_mount_namespaces(namespaces)
    assert not leftovers, f"pod processes still running after kube-harness stop: {leftovers}"


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running test cluster (two Nodes: node-0 without GPUs, node-1 with 4)."""
    cluster = start_cluster(tmp_path_factory.mktemp("kube"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
