"""One replica process on this machine, supervised by a coroutine.

The listening socket is bound here (127.0.0.1, a free port) and handed to the
process, so the replica keeps its address across restarts.  The process gets
SIGTERM if the control plane dies (PR_SET_PDEATHSIG), so none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelport.compute.local.logs import tail

PR_SET_PDEATHSIG = 1
START_ATTEMPTS = 3  # a replica that never got ready is Failed after this many tries
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
STARTUP_PROBE_S = 0.1


class ReplicaState(enum.StrEnum):
    STARTING = "Starting"
    READY = "Ready"
    UNHEALTHY = "Unhealthy"
    CRASHED = "Crashed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


@dataclass(frozen=True)
class Probe:
    period_s: float = 10.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    startup_deadline_s: float = 310.0


@dataclass(frozen=True)
class ReplicaSpec:
    service: str
    deployment: int
    python: str
    app_root: Path
    env: dict[str, str]
    log_dir: Path
    probe: Probe = field(default_factory=Probe)
    drain_s: float = 60.0
    fixed_port: int | None = None  # LocalWebservice(port=...): the replica answers there too


def set_pdeathsig() -> None:
    """In a child before exec: SIGTERM when the parent dies, so no process outlives it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def probe_once(port: int, timeout_s: float) -> bool:
    """GET / answered 200 within ``timeout_s``."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout_s
        )
        writer.write(b"GET / HTTP/1.1\r\nhost: replica\r\nconnection: close\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        return line.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()


class Replica:
    def __init__(self, spec: ReplicaSpec, index: int, on_change: Callable[[], None]) -> None:
        self.spec = spec
        self.index = index
        self.on_change = on_change
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", spec.fixed_port if index == 0 and spec.fixed_port else 0))
        self.sock.listen(1024)
        self.port: int = self.sock.getsockname()[1]
        # Probes go to a socket of their own, answered even while run() holds the loop.
        self.health = socket.socket()
        self.health.bind(("127.0.0.1", 0))
        self.health.listen(16)
        self.health_port: int = self.health.getsockname()[1]
        self.state = ReplicaState.STARTING
        self.restarts = 0
        self.probes_passed = 0
        self.error: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = spec.log_dir / f"replica-{spec.deployment}-{index}.log"
        self._stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Replica {self.spec.service}#{self.index} port={self.port} {self.state}>"

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._supervise())

    def _set(self, state: ReplicaState) -> None:
        if state != self.state:
            self.state = state
            self.on_change()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._set(ReplicaState.STARTING)
            await self._spawn()
            ready = await self._wait_ready()
            if ready:
                failures = 0
                self._set(ReplicaState.READY)
                await self._monitor()
            else:
                failures += 1
            if self._stopping.is_set():
                break
            code = await self._end_process()
            self.error = (
                f"replica exited with code {code}; last log lines:\n{tail(self.log_path, 30)}"
            )
            if failures >= START_ATTEMPTS:
                self._set(ReplicaState.FAILED)
                return
            self._set(ReplicaState.CRASHED)
            self.restarts += 1
            delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _spawn(self) -> None:
        self.spec.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.spec.env,
            "MODELPORT_LISTEN_FD": str(self.sock.fileno()),
            "MODELPORT_HEALTH_FD": str(self.health.fileno()),
        }
        with self.log_path.open("ab") as log:
            if self.restarts:
                log.write(f"--- restart {self.restarts} at {time.ctime()} ---\n".encode())
            self.proc = await asyncio.create_subprocess_exec(
                self.spec.python,
                "-m",
                "modelport.runtime",
                cwd=self.spec.app_root,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(self.sock.fileno(), self.health.fileno()),
                preexec_fn=set_pdeathsig,
            )

    async def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.spec.probe.startup_deadline_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self.proc.returncode is not None:
                return False
            if await probe_once(self.health_port, min(self.spec.probe.timeout_s, 1.0)):
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STARTUP_PROBE_S)
        return False

    async def _monitor(self) -> None:
        """Liveness probes until the process exits, fails its probes, or we stop."""
        assert self.proc is not None
        probe = self.spec.probe
        misses = 0
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), probe.period_s)
            if self.proc.returncode is not None or self._stopping.is_set():
                return
            if await probe_once(self.health_port, probe.timeout_s):
                misses = 0
                self.probes_passed += 1
                self._set(ReplicaState.READY)
                continue
            misses += 1
            self._set(ReplicaState.UNHEALTHY)
            if misses >= probe.failure_threshold:
                return  # the caller ends the process and restarts it

    async def _end_process(self, grace_s: float = 5.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return proc.returncode

    async def stop(self) -> None:
        """Let requests in progress finish (SIGTERM drains), then end the process."""
        self._stopping.set()
        self._set(ReplicaState.STOPPING)
        await self._end_process(grace_s=self.spec.drain_s)
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sock.close()
        self.health.close()
        self._set(ReplicaState.STOPPED)
