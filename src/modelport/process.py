"""Finding and stopping the server process of a workspace (by its recorded pid)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from modelport.home import config_path


def read_server_pid(home: Path) -> int | None:
    try:
        pid = json.loads(config_path(home).read_text()).get("pid")
    except (OSError, ValueError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def pid_is_modelport(pid: int) -> bool:
    """True if ``pid`` is alive and is a modelport process (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"modelport" in cmdline


def stop_process(pid: int, timeout_s: float = 15.0) -> bool:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        # A zombie child still answers kill(0); reap it if it is ours.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
