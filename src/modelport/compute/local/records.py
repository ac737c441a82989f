"""What the local target keeps on disk about the replicas it runs.

Replicas outlive the control plane, so what a restarted control plane needs to
find and adopt them is written down: per deployment (a service's generation) a
``deployment.json`` with the replica spec, and per replica a record with its
ports and its supervisor's process.  A process is known by its pid *and* its
start time, so a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelport.compute.local.limits import Resources
from modelport.compute.local.probing import ProbeSettings
from modelport.compute.local.sandbox import Confinement

DEPLOYMENT_FILE = "deployment.json"
REPLICAS_DIR = "replicas"


@dataclass(frozen=True)
class ReplicaSpec:
    service: str
    deployment: int
    python: str
    app_root: Path
    env: dict[str, str]
    log_dir: Path
    run_dir: Path  # short folder for status sockets (AF_UNIX paths are limited)
    workspace_key: str = "default"  # names this workspace's cgroups
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    drain_s: float = 60.0
    fixed_port: int | None = None  # LocalWebservice(port=...): the replica answers there too
    shared_port: bool = False  # the next generation binds the same port beside this one
    resources: Resources = field(default_factory=Resources)
    gpus: int = 0  # devices each replica gets (its CUDA_VISIBLE_DEVICES)
    confinement: Confinement | None = None  # what its Landlock sandbox allows (sandbox.py)

    @property
    def folder(self) -> Path:
        """The deployment's folder (``services/<name>/<generation>``)."""
        return self.app_root.parent

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("app_root", "log_dir", "run_dir"):
            doc[key] = str(doc[key])
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReplicaSpec:
        return cls(
            **{
                **doc,
                "app_root": Path(doc["app_root"]),
                "log_dir": Path(doc["log_dir"]),
                "run_dir": Path(doc["run_dir"]),
                "probe": ProbeSettings(**doc["probe"]),
                "resources": Resources(**doc["resources"]),
                "confinement": Confinement.from_dict(doc["confinement"])
                if doc.get("confinement")
                else None,
            }
        )

    def status_socket(self, index: int) -> Path:
        return self.run_dir / f"{self.service}.{self.deployment}.{index}.sock"

    def http_socket(self, index: int) -> Path:
        """Where the replica serves the router over a Unix socket (``replica.py``)."""
        return self.run_dir / f"{self.service}.{self.deployment}.{index}.http"

    def record_path(self, index: int) -> Path:
        return self.folder / REPLICAS_DIR / f"{index}.json"

    def exit_path(self, index: int) -> Path:
        return self.folder / REPLICAS_DIR / f"{index}.exit"

    def tmp_dir(self, index: int) -> Path:
        """The replica's private TMPDIR and HOME (the shared /tmp is out of its reach)."""
        return self.folder / f"tmp-{index}"

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"replica-{self.deployment}-{index}.log"

    def cgroup_name(self, index: int) -> str:
        return f"{self.workspace_key}/{self.service}-g{self.deployment}-r{index}"


@dataclass(frozen=True)
class ReplicaRecord:
    index: int
    port: int
    health_port: int
    shim_pid: int
    shim_start: int  # the process's start time, in clock ticks since boot
    devices: tuple[str, ...] = ()  # the GPUs it was given


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, readable by the owner only (specs carry the service's variables)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_deployment(spec: ReplicaSpec, owner: dict[str, Any] | None = None) -> None:
    """Write a deployment's spec; ``owner`` is what the control plane keeps beside it."""
    write_json(spec.folder / DEPLOYMENT_FILE, {"replicaSpec": spec.to_dict(), "owner": owner})


def load_deployment(folder: Path) -> ReplicaSpec | None:
    doc = read_json(folder / DEPLOYMENT_FILE)
    if doc is None:
        return None
    try:
        return ReplicaSpec.from_dict(doc["replicaSpec"])
    except (KeyError, TypeError, ValueError):
        return None


def deployment_owner(folder: Path) -> dict[str, Any] | None:
    doc = read_json(folder / DEPLOYMENT_FILE)
    owner = doc.get("owner") if doc is not None else None
    return owner if isinstance(owner, dict) else None


def save_record(spec: ReplicaSpec, record: ReplicaRecord) -> None:
    write_json(spec.record_path(record.index), asdict(record))


def load_records(spec: ReplicaSpec) -> list[ReplicaRecord]:
    out = []
    for path in sorted((spec.folder / REPLICAS_DIR).glob("*.json")):
        doc = read_json(path)
        with contextlib.suppress(KeyError, TypeError):
            if doc is not None:
                out.append(ReplicaRecord(**{**doc, "devices": tuple(doc.get("devices", ()))}))
    return sorted(out, key=lambda r: r.index)


def drop_record(spec: ReplicaSpec, index: int) -> None:
    for path in (spec.record_path(index), spec.exit_path(index)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def is_running(pid: int, started: int) -> bool:
    return start_time(pid) == started


def stop_processes(found: list[tuple[int, int]], grace_s: float) -> None:
    """SIGTERM each (pid, start time), wait up to ``grace_s`` for all, then SIGKILL the
    process group of any that lingers (a supervisor and what it runs)."""
    for pid, started in found:
        if is_running(pid, started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_running(*p) for p in found):
        time.sleep(0.05)
    for pid, started in found:
        if is_running(pid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
