"""Processes named by PID *and* start time, and stopping them for sure.

PIDs are reused, so a record names a process only while ``/proc/PID/stat`` still gives
the start time that was recorded with it: a stale record can never signal a stranger.
Every container the node agent runs has a mount namespace of its own, so whatever a
container started (even a process that left its process group) is found again by that
namespace.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def start_time(pid: int) -> int | None:
    """The start time of a live (non-zombie) process in clock ticks since boot, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may contain spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the whole line


def mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def pids_in_mount_namespaces(namespaces: set[str]) -> list[int]:
    """Live processes (other than this one) inside any of ``namespaces``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid != os.getpid() and mount_namespace(pid) in namespaces and start_time(pid):
            found.append(pid)
    return found


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: int

    @classmethod
    def of(cls, name: str, pid: int) -> ProcessRecord:
        started = start_time(pid)
        if started is None:
            raise ProcessLookupError(f"{name} (pid {pid}) is not running")
        return cls(name, pid, started)

    def alive(self) -> bool:
        return start_time(self.pid) == self.start_time

    def signal(self, sig: int, group: bool = True) -> None:
        """Send ``sig`` to the process (and its process group, which it leads) if it lives."""
        if not self.alive():
            return
        try:
            if group and os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(records: Iterable[ProcessRecord], timeout_s: float) -> list[ProcessRecord]:
    """Wait until none of ``records`` is alive; the ones still alive at the deadline."""
    pending = [r for r in records if r.alive()]
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [r for r in pending if r.alive()]
    return pending


def terminate(records: Iterable[ProcessRecord], timeout_s: float) -> list[ProcessRecord]:
    """SIGTERM each process group, wait up to ``timeout_s``, SIGKILL the stragglers.

    Returns the records that had to be killed; raises if any survives SIGKILL.
    """
    live = [r for r in records if r.alive()]
    for record in live:
        record.signal(signal.SIGTERM)
    stragglers = wait_gone(live, timeout_s)
    for record in stragglers:
        record.signal(signal.SIGKILL)
    survivors = wait_gone(stragglers, 10.0)
    if survivors:
        raise RuntimeError(f"processes survived SIGKILL: {survivors}")
    return stragglers


def kill_mount_namespaces(namespaces: set[str], timeout_s: float = 10.0) -> list[int]:
    """SIGKILL every process left in ``namespaces``; the PIDs that were found."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout_s
    while namespaces and time.monotonic() < deadline:
        pids = pids_in_mount_namespaces(namespaces)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        time.sleep(0.05)
    return killed


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON, atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def records_to_json(records: Iterable[ProcessRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]


def records_from_json(items: Iterable[dict[str, Any]]) -> list[ProcessRecord]:
    return [ProcessRecord(str(i["name"]), int(i["pid"]), int(i["start_time"])) for i in items]
