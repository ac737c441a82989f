"""``python -m modelport.compute.local.shim DEPLOYMENT_DIR INDEX``: one replica's supervisor.

The control plane starts one shim per replica in a session of its own and hands
it the replica's listening sockets.  The shim starts the scoring runtime in a
cgroup with the service's CPU and memory, probes it (``probing.py``), restarts it
when it exits or fails ``failure_threshold`` probes in a row, and gives up
(Failed) after three starts that never became ready.  It does not depend on the
control plane: replicas keep serving and keep being restarted while the control
plane is down, and a restarted control plane adopts them by connecting to the
shim's status socket, where every change of state is written as a JSON line.
A client may send ``{"op": "stop", "drainS": N}``; SIGTERM stops with the spec's
drain time.  The runtime gets SIGTERM if the shim dies, so none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from modelport.compute.local import gpus, limits, probing, sandbox
from modelport.compute.local.logs import tail
from modelport.compute.local.records import ReplicaSpec, load_deployment, write_json
from modelport.home import open_private

log = logging.getLogger("modelport.shim")
PR_SET_PDEATHSIG = 1
START_ATTEMPTS = 3  # starts that never became ready before the replica is Failed
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
STARTING_KILL_GRACE_S = 2.0  # a replica still in init() serves nobody: end it quickly
NOT_ISOLATED = 126  # the exit code of a replica process whose sandbox could not be entered


def set_pdeathsig() -> None:
    """In a child before exec: SIGTERM when the parent dies, so no process outlives it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def probe_once(port: int, timeout_s: float) -> bool:
    """GET / answered 200 within ``timeout_s``."""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: replica\r\nconnection: close\r\n\r\n")
            line = await reader.readline()
        return line.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()


def exit_text(code: int, oom_killed: bool, limit_gb: float | None) -> str:
    if code >= 0:
        return f"exited with code {code}"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    text = f"was killed by signal {-code} ({name})"
    if oom_killed:
        text += f" for going over its memory limit (memory_gb_limit={limit_gb})"
    return text


class Supervisor:
    def __init__(
        self,
        spec: ReplicaSpec,
        index: int,
        listen_fd: int,
        health_fd: int,
        unix_fd: int | None = None,
    ) -> None:
        self.spec = spec
        self.index = index
        self.fds = (listen_fd, health_fd)
        self.unix_fd = unix_fd  # the router's Unix socket, where the control plane made one
        with socket.socket(fileno=os.dup(health_fd)) as probe_sock:
            self.health_port: int = probe_sock.getsockname()[1]
        with socket.socket(fileno=os.dup(listen_fd)) as listen_sock:
            self.port: int = listen_sock.getsockname()[1]
        self.log_path = spec.log_path(index)
        self.proc: asyncio.subprocess.Process | None = None
        self.group: limits.Group | None = None
        self.confinement: tuple[sandbox.Confinement, int] | None = None  # and Landlock's ABI
        self.tmp_dir = spec.tmp_dir(index)
        self.stopping = asyncio.Event()
        self.drain_s = spec.drain_s
        self.clients: set[asyncio.StreamWriter] = set()
        self._oom_seen = 0
        self.status: dict[str, Any] = {
            "service": spec.service,
            "deployment": spec.deployment,
            "index": index,
            "port": self.port,
            "state": "Starting",
            "restarts": 0,
            "probesPassed": 0,
            "error": None,
            "pid": None,
            "startedAt": None,
            "readyAt": None,
            "limits": None,
            "shimPid": os.getpid(),
        }

    # -- status --------------------------------------------------------------------
    def _publish(self, **changes: Any) -> None:
        if all(self.status.get(k) == v for k, v in changes.items()):
            return
        self.status.update(changes)
        line = (json.dumps(self.status) + "\n").encode()
        for writer in list(self.clients):
            if writer.is_closing():
                self.clients.discard(writer)
            else:
                writer.write(line)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((json.dumps(self.status) + "\n").encode())
        self.clients.add(writer)
        try:
            while line := await reader.readline():
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    command = json.loads(line)
                    if command.get("op") == "stop":
                        self.request_stop(float(command.get("drainS", self.spec.drain_s)))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients.discard(writer)

    def request_stop(self, drain_s: float | None = None) -> None:
        if drain_s is not None:
            self.drain_s = drain_s
        self.stopping.set()

    def note(self, text: str) -> None:
        """A line in the replica's log, marked as modelport's own."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open_private(self.log_path, "a") as f:
            f.write(f"--- modelport {stamp}: {text} ---\n")

    # -- the process ---------------------------------------------------------------
    def _limit(self) -> None:
        resources = self.spec.resources
        if not resources.any:
            self._publish(limits="none requested")
            return
        try:
            self.group = limits.create(self.spec.cgroup_name(self.index), resources)
        except limits.Unavailable as exc:
            self._publish(limits=f"not enforced: {exc}")
            return
        self._publish(limits="enforced")

    def _confine(self) -> str | None:
        """Build the replica's sandbox; why it cannot be isolated where it should be.

        Without Landlock on this kernel the replica runs unconfined, as ``modelport up``
        said; with Landlock, a sandbox that cannot be built keeps it from starting.
        """
        confinement = self.spec.confinement
        if confinement is None:
            return None
        try:
            abi = sandbox.abi_version()
        except sandbox.Unavailable as exc:
            self.note(f"isolation: NONE — {exc}: this replica can read the workspace's secrets")
            return None
        confinement = confinement.with_writable(str(self.tmp_dir))
        try:  # built here once to know it can be; each replica process builds its own
            os.close(sandbox.build(confinement, abi))
        except sandbox.Unavailable as exc:
            return f"the replica cannot be isolated: {exc}"
        self.confinement = (confinement, abi)
        _, dropped = sandbox.plan(confinement, abi)
        left_out = f"; left out (they hold the workspace): {', '.join(dropped)}" if dropped else ""
        self.note(f"isolation: Landlock ABI {abi}{left_out}")
        return None

    async def _spawn(self) -> None:
        env = {
            **self.spec.env,
            "MODELPORT_LISTEN_FD": str(self.fds[0]),
            "MODELPORT_HEALTH_FD": str(self.fds[1]),
        }
        passed: tuple[int, ...] = self.fds
        if self.unix_fd is not None:
            env["MODELPORT_UNIX_FD"] = str(self.unix_fd)
            passed = (*self.fds, self.unix_fd)
        if self.spec.confinement is not None:  # the shared /tmp and ~ are out of reach
            self.tmp_dir.mkdir(mode=0o700, exist_ok=True)
            for name in ("TMPDIR", "TMP", "TEMP", "HOME"):
                env[name] = str(self.tmp_dir)
        if self.spec.gpus:  # this replica's own devices, none of another's
            env[gpus.VARIABLE] = os.environ.get(gpus.FOR_SHIM, "")
        group, confinement = self.group, self.confinement

        # The sandbox is entered here, before exec, not by the runtime: nothing of the
        # runtime's own start-up runs unconfined in the process that runs score.py.
        def child() -> None:
            set_pdeathsig()
            if group is not None:
                group.add_self()  # before the sandbox: it writes to /sys/fs/cgroup
            if confinement is not None:
                try:
                    sandbox.enter(sandbox.build(*confinement, own_proc=True))
                except (OSError, sandbox.Unavailable) as exc:
                    os.write(2, f"--- modelport: cannot isolate the replica: {exc} ---\n".encode())
                    os._exit(NOT_ISOLATED)

        with open_private(self.log_path, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.spec.python,
                "-m",
                "modelport.runtime",
                cwd=self.spec.app_root,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=passed,
                preexec_fn=child,
            )
        self._publish(state="Starting", pid=self.proc.pid, startedAt=time.time(), readyAt=None)

    async def _wait(self, seconds: float) -> None:
        """Up to ``seconds``, less if the process exits or a stop is asked for."""
        assert self.proc is not None
        waits = [
            asyncio.ensure_future(self.proc.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds), return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()

    async def _watch(self) -> tuple[str, bool]:
        """Probe until the process exits, must be restarted, or we stop: (why, was ready)."""
        assert self.proc is not None
        settings = self.spec.probe
        state = probing.start(settings, time.monotonic())
        ever_ready = False
        while True:
            probe = probing.next_probe(settings, state, time.monotonic())
            await self._wait(probe.at - time.monotonic())
            if self.stopping.is_set():
                return "stop", ever_ready
            if self.proc.returncode is not None:
                return "exited", ever_ready
            ok = await probe_once(self.health_port, probe.timeout_s)
            state, verdict = probing.observe(settings, state, probe, ok, time.monotonic())
            if ok and probe.counts:
                self._publish(probesPassed=self.status["probesPassed"] + 1)
            if verdict is probing.Verdict.READY:
                ever_ready = True
                self._publish(state="Ready", readyAt=self.status["readyAt"] or time.time())
            elif verdict is probing.Verdict.NOT_READY:
                self._publish(state="Unhealthy")
            elif verdict is probing.Verdict.RESTART:
                self.note(
                    f"restarting the replica: {settings.failure_threshold} liveness probes in a "
                    f"row failed (every {settings.period_s:g} s, timeout {settings.timeout_s:g} s)"
                )
                return "probes", ever_ready

    async def _end(self, grace_s: float) -> int | None:
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

    def _record_exit(self, code: int) -> str:
        oom = self.group is not None and self.group.oom_kills() > self._oom_seen
        if self.group is not None:
            self._oom_seen = self.group.oom_kills()
        assert self.proc is not None
        write_json(
            self.spec.exit_path(self.index),
            {
                "pid": self.proc.pid,
                "code": code if code >= 0 else None,
                "signal": -code if code < 0 else None,
                "oomKilled": oom,
                "time": time.time(),
            },
        )
        return f"replica {exit_text(code, oom, self.spec.resources.memory_gb_limit)}"

    async def supervise(self) -> None:
        failed_starts = 0
        self._limit()
        problem = self._confine()
        if problem is not None:
            self.note(problem)
            self._publish(state="Failed", error=problem, pid=None)
            await self.stopping.wait()
        while not self.stopping.is_set():
            await self._spawn()
            why, was_ready = await self._watch()
            if why == "stop":
                break
            code = await self._end(5.0)
            assert code is not None
            what = self._record_exit(code)
            if why == "exited":
                self.note(f"the {what}")
            failed_starts = 0 if was_ready else failed_starts + 1
            error = f"{what}; last log lines:\n{tail(self.log_path, 30)}"
            if failed_starts >= START_ATTEMPTS:
                self._publish(state="Failed", error=error, pid=None)
                await self.stopping.wait()
                break
            self._publish(
                state="Crashed", error=error, pid=None, restarts=self.status["restarts"] + 1
            )
            delay = BACKOFF_S[min(failed_starts, len(BACKOFF_S) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
        ready = self.status["state"] == "Ready"
        self._publish(state="Stopping")
        await self._end(self.drain_s if ready else STARTING_KILL_GRACE_S)
        if self.group is not None:
            self.group.remove()
        self._publish(state="Stopped", pid=None)


async def serve(spec: ReplicaSpec, index: int) -> None:
    unix_fd = os.environ.get("MODELPORT_UNIX_FD")
    supervisor = Supervisor(
        spec,
        index,
        int(os.environ["MODELPORT_LISTEN_FD"]),
        int(os.environ["MODELPORT_HEALTH_FD"]),
        int(unix_fd) if unix_fd else None,
    )
    path = spec.status_socket(index)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a shim of this replica that was killed
    server = await asyncio.start_unix_server(supervisor.client, path=str(path))
    os.chmod(path, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.request_stop)
    try:
        await supervisor.supervise()
    finally:
        server.close()
        for writer in list(supervisor.clients):
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    spec = load_deployment(Path(argv[0]))
    if spec is None:
        print(f"no deployment spec in {argv[0]}", file=sys.stderr)
        return 2
    asyncio.run(serve(spec, int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
