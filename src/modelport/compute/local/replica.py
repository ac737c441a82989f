"""One replica on this machine, as the control plane sees it: a handle on its shim.

The listening sockets are bound here (127.0.0.1, a free port, or the service's
fixed port; and a Unix socket in the workspace's private run folder, the router's
cheaper hop) and handed to the replica's shim (``shim.py``), which keeps them
across restarts of the replica process.  The shim runs in a session of its own,
so the replica outlives the control plane; this handle follows the shim's status
socket, and a restarted control plane builds the same handle from the replica's
record with :meth:`Replica.adopt`, without touching the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.compute.local import gpus
from modelport.compute.local.records import (
    ReplicaRecord,
    ReplicaSpec,
    drop_record,
    is_running,
    save_record,
    start_time,
)
from modelport.compute.target import ReplicaState, ReplicaStatus
from modelport.errors import ConflictError
from modelport.home import open_private

log = logging.getLogger("modelport.compute")
CONNECT_TIMEOUT_S = 15.0
STOP_MARGIN_S = 15.0  # beyond the drain time before a shim that does not end is killed
RESPAWN_DELAY_S = 0.5
MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 elsewhere


def bind_replica_socket(port: int, shared: bool = False) -> socket.socket:
    """A listening socket on 127.0.0.1; ``shared`` lets two generations hold a fixed port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    return sock


def bind_unix_socket(path: Path) -> socket.socket | None:
    """A listening Unix socket at ``path`` (owner only: the run folder is 0700 too),
    or None where the path is too long for AF_UNIX (the router then uses TCP)."""
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        return None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a replica of this index whose shim was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    return sock


def check_port_free(port: int) -> None:
    """Refuse a fixed port another program listens on (a plain bind: no sharing)."""
    try:
        bind_replica_socket(port).close()
    except OSError as exc:
        raise ConflictError(
            f"port {port} cannot be used for the service: {exc.strerror}",
            hint="pick another port in the deployment configuration (or leave it out)",
        ) from exc


class Replica:
    def __init__(
        self,
        spec: ReplicaSpec,
        index: int,
        on_change: Callable[[], None],
        record: ReplicaRecord | None = None,
        devices: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        self.index = index
        self.devices = record.devices if record is not None else devices
        self.on_change = on_change
        self.sock: socket.socket | None = None
        self.health: socket.socket | None = None
        self.unix: socket.socket | None = None
        self.unix_path: Path | None = None  # where the router reaches it, if not by TCP
        self.record = record
        if record is None:
            self._bind()
        else:
            self.port, self.health_port = record.port, record.health_port
            path = spec.http_socket(index)
            self.unix_path = path if path.exists() else None  # one an older shim did not get
        self.state = ReplicaState.STARTING
        self.restarts = 0
        self.probes_passed = 0
        self.error: str | None = None
        self.started_at: float | None = None
        self.pid: int | None = None  # the runtime process, while one runs
        self.limits: str | None = None
        self.log_path = spec.log_path(index)
        self._stopping = False
        self._drain: float | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.known = asyncio.Event()  # the shim's first status has arrived
        self._proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def adopt(
        cls, spec: ReplicaSpec, record: ReplicaRecord, on_change: Callable[[], None]
    ) -> Replica | None:
        """The handle of a replica a previous control plane started, if its shim still runs."""
        if not is_running(record.shim_pid, record.shim_start):
            return None
        return cls(spec, record.index, on_change, record)

    def __repr__(self) -> str:
        return f"<Replica {self.spec.service}#{self.index} port={self.port} {self.state}>"

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(
            index=self.index,
            state=self.state,
            host="127.0.0.1",
            port=self.port,
            restarts=self.restarts,
            probes_passed=self.probes_passed,
            error=self.error,
            started_at=self.started_at,
            pid=self.pid,
            limits=self.limits,
            exit_file=str(self.spec.exit_path(self.index)),
            stats_port=self.health_port,
            unix_socket=str(self.unix_path) if self.unix_path is not None else None,
        )

    def _bind(self) -> None:
        first = self.index == 0
        fixed = self.spec.fixed_port if first else None
        self.sock = bind_replica_socket(fixed or 0, shared=first and self.spec.shared_port)
        self.port = self.sock.getsockname()[1]
        # Probes go to a socket of their own, answered even while run() holds the loop.
        self.health = bind_replica_socket(0)
        self.health_port = self.health.getsockname()[1]
        self.unix = bind_unix_socket(self.spec.http_socket(self.index))
        self.unix_path = self.spec.http_socket(self.index) if self.unix is not None else None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def _set(self, state: ReplicaState) -> None:
        if state != self.state:
            self.state = state
            self.on_change()

    # -- following the shim -------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if self._stopping:  # stopped before its supervisor was started
                return
            if self.record is None:
                await self._spawn()
            await self._follow()
            self.known.set()  # nothing more will come from that shim
            if self._stopping:
                return
            # The shim itself ended (killed from outside): start a new one.
            log.error("the supervisor of %r exited; starting a new one", self)
            self.error = "the replica's supervisor exited; it was started again"
            self._set(ReplicaState.CRASHED)
            self._forget_record()
            await asyncio.sleep(RESPAWN_DELAY_S)
            if self._stopping:
                return

    async def _spawn(self) -> None:
        if self.sock is None:  # an adopted replica's sockets stayed with its old shim
            self._bind()
        assert self.sock is not None and self.health is not None
        self.spec.log_dir.mkdir(parents=True, exist_ok=True)
        fds = (self.sock.fileno(), self.health.fileno())
        unix = {"MODELPORT_UNIX_FD": str(self.unix.fileno())} if self.unix is not None else {}
        with open_private(self.log_path, "ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modelport.compute.local.shim",
                str(self.spec.folder),
                str(self.index),
                env={
                    **_shim_environment(),
                    "MODELPORT_LISTEN_FD": str(fds[0]),
                    "MODELPORT_HEALTH_FD": str(fds[1]),
                    **unix,
                    **({gpus.FOR_SHIM: ",".join(self.devices)} if self.spec.gpus else {}),
                },
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(*fds, self.unix.fileno()) if self.unix is not None else fds,
                start_new_session=True,  # outlives the control plane
            )
        started = start_time(self._proc.pid)
        self.record = ReplicaRecord(
            self.index, self.port, self.health_port, self._proc.pid, started or 0, self.devices
        )
        save_record(self.spec, self.record)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        path = str(self.spec.status_socket(self.index))
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._shim_gone():
                return None
            with contextlib.suppress(OSError):
                return await asyncio.open_unix_connection(path)
            await asyncio.sleep(0.02)
        log.error("no status from the supervisor of %r within %.0f s", self, CONNECT_TIMEOUT_S)
        return None

    def _shim_gone(self) -> bool:
        if self._proc is not None:
            return self._proc.returncode is not None
        record = self.record
        return record is None or not is_running(record.shim_pid, record.shim_start)

    async def _follow(self) -> None:
        """Read the shim's status lines until it ends."""
        connection = await self._connect()
        if connection is not None:
            reader, self._writer = connection
            if self._stopping:  # stop() came while we were connecting
                self._send_stop(self._drain)
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        self._apply(json.loads(line))
            self._writer.close()
            self._writer = None
        if self._proc is not None:
            await self._proc.wait()
            self._proc = None
        else:
            await self._until_gone()

    async def _until_gone(self) -> None:
        """An adopted shim is no child of ours: wait on its pid until it is gone."""
        record = self.record
        while record is not None and is_running(record.shim_pid, record.shim_start):
            await asyncio.sleep(0.05)

    def _apply(self, status: dict[str, Any]) -> None:
        self.restarts = int(status["restarts"])
        self.probes_passed = int(status["probesPassed"])
        self.error = status.get("error") or self.error
        self.started_at = status.get("startedAt")
        self.pid = status.get("pid")
        self.limits = status.get("limits")
        state = ReplicaState(status["state"])
        if state == ReplicaState.STOPPED and not self._stopping:
            state = ReplicaState.CRASHED
        self._set(state)
        self.known.set()

    # -- stopping -----------------------------------------------------------------------
    def _send_stop(self, drain_s: float | None) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        command: dict[str, Any] = {"op": "stop"}
        if drain_s is not None:
            command["drainS"] = drain_s
        self._writer.write((json.dumps(command) + "\n").encode())

    async def stop(self, drain_s: float | None = None) -> None:
        """Let requests in progress finish (the runtime drains), then end the replica."""
        self._stopping = True
        self._drain = drain_s
        self._set(ReplicaState.STOPPING)
        self._send_stop(drain_s)
        limit = (drain_s if drain_s is not None else self.spec.drain_s) + STOP_MARGIN_S
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), limit)
            except TimeoutError:
                log.error("the supervisor of %r did not stop in %.0f s; killing it", self, limit)
                self._kill()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self.task, 5)
        for sock in (self.sock, self.health, self.unix):
            if sock is not None:
                sock.close()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_path.unlink()
        self._forget_record()
        self._set(ReplicaState.STOPPED)

    def _kill(self) -> None:
        record = self.record
        if record is not None and is_running(record.shim_pid, record.shim_start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.shim_pid, signal.SIGKILL)  # the shim and its runtime

    def _forget_record(self) -> None:
        drop_record(self.spec, self.index)
        self.record = None


_PRIVATE = ("MODELPORT_DATABASE_URL", "MODELPORT_ROUTER_TOKEN")


def _shim_environment() -> dict[str, str]:
    """The server's environment for the shim, without its secrets (the shim needs none)."""
    return {k: v for k, v in os.environ.items() if k not in _PRIVATE}
