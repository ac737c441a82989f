"""Stopping a data plane whose control plane is gone (``modelport down`` after a crash).

The router and the replicas outlive a control plane that was killed; a restarted
one adopts them.  When none is started again, ``modelport down`` finds them from
the records they left in the workspace and stops them: SIGTERM to each
supervisor (it drains its processes), SIGKILL to the process group of any that
lingers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from modelport.compute.layout import services_root
from modelport.compute.local.records import (
    is_running,
    load_deployment,
    load_records,
    read_json,
    stop_processes,
)
from modelport.control.router_process import router_dir
from modelport.home import runtime_dir

GRACE_S = 15.0


def running_supervisors(home: Path) -> list[tuple[int, int]]:
    """(pid, start time) of the router's supervisor and of every replica's shim still running."""
    found = []
    router = read_json(router_dir(home) / "router.json")
    with contextlib.suppress(KeyError, TypeError, ValueError):
        if router is not None:
            found.append((int(router["pid"]), int(router["started"])))
    for folder in sorted(services_root(home).glob("*/*/")):
        spec = load_deployment(folder)
        if spec is not None:
            found += [(r.shim_pid, r.shim_start) for r in load_records(spec)]
    return [(pid, started) for pid, started in found if is_running(pid, started)]


def stop_data_plane(home: Path) -> int:
    """Stop what still runs; returns how many supervisors were stopped."""
    found = running_supervisors(home)
    stop_processes(found, GRACE_S)
    with contextlib.suppress(FileNotFoundError):
        (router_dir(home) / "router.json").unlink()
    with contextlib.suppress(OSError):
        runtime_dir(home).rmdir()
    return len(found)
