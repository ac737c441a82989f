"""CPU and memory of a local replica, enforced with a cgroup where the OS allows it.

What the settings mean follows Kubernetes (and so v1 on AKS): ``cpu_cores`` is a
request, a share of the CPU under contention (cgroup cpu weight); ``cpu_cores_limit``
a hard quota; ``memory_gb_limit`` a hard limit (the kernel's OOM killer ends a
replica that goes over it); ``memory_gb`` a request, protected from reclaim under
memory pressure.  The mapping to cgroup files is a pure function; the rest finds
this process's cgroup (v2, else v1 per controller), makes one child group per
replica, and moves the replica's process into it before it runs the user's code.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GB = 1024**3
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class Resources:
    cpu: float | None = None  # cores requested
    cpu_limit: float | None = None
    memory_gb: float | None = None  # requested
    memory_gb_limit: float | None = None

    @property
    def any(self) -> bool:
        values = (self.cpu, self.cpu_limit, self.memory_gb, self.memory_gb_limit)
        return any(v is not None for v in values)


def v2_files(res: Resources) -> dict[str, str]:
    """cgroup v2 file → value for these resources."""
    out: dict[str, str] = {}
    if res.cpu is not None:
        shares = max(2, round(res.cpu * 1024))
        out["cpu.weight"] = str(max(1, min(10000, 1 + (shares - 2) * 9999 // 262142)))
    if res.cpu_limit is not None:
        out["cpu.max"] = f"{max(1000, round(res.cpu_limit * CFS_PERIOD_US))} {CFS_PERIOD_US}"
    if res.memory_gb is not None:
        out["memory.low"] = str(round(res.memory_gb * GB))
    if res.memory_gb_limit is not None:
        out["memory.max"] = str(round(res.memory_gb_limit * GB))
    return out


def v1_files(res: Resources) -> dict[str, dict[str, str]]:
    """cgroup v1 controller → file → value for these resources."""
    cpu: dict[str, str] = {}
    memory: dict[str, str] = {}
    if res.cpu is not None:
        cpu["cpu.shares"] = str(max(2, round(res.cpu * 1024)))
    if res.cpu_limit is not None:
        cpu["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
        cpu["cpu.cfs_quota_us"] = str(max(1000, round(res.cpu_limit * CFS_PERIOD_US)))
    if res.memory_gb is not None:
        memory["memory.soft_limit_in_bytes"] = str(round(res.memory_gb * GB))
    if res.memory_gb_limit is not None:
        memory["memory.limit_in_bytes"] = str(round(res.memory_gb_limit * GB))
    return {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}


class Unavailable(Exception):
    """This machine gives no cgroup we may write: the limits cannot be enforced."""


@dataclass(frozen=True)
class Group:
    """One replica's cgroup: a folder per controller (one folder under v2)."""

    dirs: tuple[Path, ...]

    def add_self(self) -> None:
        """Move the calling process in (called in the child before it execs)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text("0\n")

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this group for its memory limit."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
                d.parent.rmdir()  # the workspace's folder, once its last replica is gone


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` → controller (``""`` for v2) → this process's group path."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def create(name: str, res: Resources, root: Path = CGROUP_ROOT) -> Group:
    """A new cgroup for one replica (``name`` is a relative path) with ``res`` applied."""
    try:
        own = _own_paths(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        raise Unavailable(f"cannot read /proc/self/cgroup: {exc.strerror}") from exc
    if (root / "cgroup.controllers").exists() or ("" in own and len(own) == 1):
        return _create_v2(root / own.get("", "/").lstrip("/"), name, res)
    return _create_v1(root, own, name, res)


def _create_v2(parent: Path, name: str, res: Resources) -> Group:
    files = v2_files(res)
    needed = {f.split(".")[0] for f in files}
    path = parent / "modelport" / name
    try:
        path.mkdir(parents=True, exist_ok=True)
        node = parent
        for part in path.relative_to(parent).parts:  # each level hands the controllers down
            control = node / "cgroup.subtree_control"
            for controller in sorted(needed - set(control.read_text().split())):
                control.write_text(f"+{controller}\n")
            node = node / part
        for file, value in files.items():
            (path / file).write_text(value + "\n")
    except OSError as exc:
        raise Unavailable(f"cgroup v2 under {parent} is not writable here: {exc}") from exc
    return Group((path,))


def _create_v1(root: Path, own: dict[str, str], name: str, res: Resources) -> Group:
    dirs = []
    try:
        for controller, files in v1_files(res).items():
            if controller not in own:
                raise Unavailable(f"the {controller} cgroup controller is not mounted")
            path = root / controller / own[controller].lstrip("/") / "modelport" / name
            path.mkdir(parents=True, exist_ok=True)
            dirs.append(path)
            for file, value in files.items():
                (path / file).write_text(value + "\n")
    except OSError as exc:
        Group(tuple(dirs)).remove()
        raise Unavailable(f"cgroup v1 under {root} is not writable here: {exc}") from exc
    return Group(tuple(dirs))


def check(name: str) -> str | None:
    """Why CPU and memory cannot be enforced here, or None when a cgroup can be made."""
    try:
        create(name, Resources(cpu=1.0, memory_gb_limit=1.0)).remove()
    except Unavailable as exc:
        return str(exc)
    return None
