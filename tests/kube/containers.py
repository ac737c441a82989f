"""One run of a container: a process group in a mount namespace of its own.

``unshare --mount --propagation private`` gives the run its own mount table, in which
the pod's volumes (and the termination-message file) are bind-mounted at their
mountPath; a missing mountpoint is made first (on the host, or inside the volume that
holds it). The run's process group is
signalled on stop, and when its main process has gone, whatever is still in its mount
namespace is killed too, as a container runtime ends a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

from tests.kube.processes import (
    kill_mount_namespaces,
    mount_namespace,
    start_time,
    write_json,
)

UNSHARE = "/usr/bin/unshare"
BASH = "/bin/bash"  # not dash: bash keeps variables such as ``A.B`` that dash drops
MESSAGE_FILE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    mounts: list[Mount]
    log: Path


class ProcessRegistry:
    """The container runs alive now, kept in ``processes.json`` for ``harness stop``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: dict[int, dict[str, object]] = {}
        self._save()

    def add(self, pid: int, namespace: str | None) -> None:
        self._items[pid] = {"pid": pid, "start_time": start_time(pid), "mount_namespace": namespace}
        self._save()

    def remove(self, pid: int) -> None:
        if self._items.pop(pid, None) is not None:
            self._save()

    def _save(self) -> None:
        write_json(self.path, list(self._items.values()))


def _script(mounts: list[Mount], working_dir: str) -> str:
    """Mount (parents first, so a nested mountpoint is made inside its volume), cd, exec."""
    lines = ["set -e"]
    for m in sorted(mounts, key=lambda m: m.target.rstrip("/").count("/")):
        source, target = shlex.quote(str(m.source)), shlex.quote(m.target)
        if m.source.is_dir():
            lines.append(f"[ -e {target} ] || mkdir -p {target}")
        else:
            lines.append(f'[ -e {target} ] || {{ mkdir -p "$(dirname {target})"; : > {target}; }}')
        lines.append(f"mount --bind {source} {target}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {target}")
    lines.append(f"mkdir -p {shlex.quote(working_dir)}")
    lines.append(f"cd {shlex.quote(working_dir)}")
    lines.append("set +e")
    lines.append('exec "$@"')
    return "\n".join(lines)


def exit_code(returncode: int) -> int:
    """A shell-style exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerRun:
    """A started container process (pid), its mount namespace, and how to stop it."""

    def __init__(
        self, proc: asyncio.subprocess.Process, namespace: str | None, registry: ProcessRegistry
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.namespace = namespace
        self._registry = registry
        self._exit: asyncio.Task[int] = asyncio.create_task(self._wait())

    async def _wait(self) -> int:
        returncode = await self.proc.wait()
        if self.namespace:  # the main process is gone: so is everything it left
            await asyncio.to_thread(kill_mount_namespaces, {self.namespace})
        self._registry.remove(self.pid)
        return exit_code(returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    @property
    def done(self) -> bool:
        return self._exit.done()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.proc.returncode is None:
                os.killpg(self.pid, sig)

    async def stop(self, grace_s: float) -> int:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), timeout=max(grace_s, 0.0))
        except TimeoutError:
            self.signal(signal.SIGKILL)
            return await self.wait()


async def _namespace_of(proc: asyncio.subprocess.Process) -> str | None:
    """The run's own mount namespace, once ``unshare`` has made it (None if it exited)."""
    ours = mount_namespace(os.getpid())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline:
        namespace = mount_namespace(proc.pid)
        if namespace is None or proc.returncode is not None:
            return None
        if namespace != ours:
            return namespace
        await asyncio.sleep(0.002)
    return None


async def launch(spec: Launch, registry: ProcessRegistry) -> ContainerRun:
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    with spec.log.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            UNSHARE, "--mount", "--propagation", "private", "--",
            BASH, "-c", _script(spec.mounts, spec.working_dir), "container", *spec.argv,
            env=spec.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )  # fmt: skip
    registry.add(proc.pid, None)
    namespace = await _namespace_of(proc)
    registry.add(proc.pid, namespace)
    return ContainerRun(proc, namespace, registry)


def tail_of(data: bytes, lines: int | None = None, limit_bytes: int | None = None) -> bytes:
    """The last ``lines`` lines of ``data``, then the last ``limit_bytes`` of those."""
    if lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines > 0 else b""
    if limit_bytes is not None:
        data = data[-limit_bytes:]
    return data


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def termination_message(message_file: Path, log: Path, policy: str | None, code: int) -> str:
    """The file the container wrote, else (FallbackToLogsOnError, on error) its log's tail."""
    message = read(message_file)[:MESSAGE_FILE_LIMIT]
    if not message.strip() and policy == "FallbackToLogsOnError" and code != 0:
        message = tail_of(read(log), FALLBACK_LINES, FALLBACK_BYTES)
    return message.decode(errors="replace")
