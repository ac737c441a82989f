"""Startup, liveness and readiness probes, run as the kubelet runs them.

A probe waits initialDelaySeconds, then checks every periodSeconds with a deadline of
timeoutSeconds. Its result flips to success after successThreshold successes in a row
and to failure after failureThreshold failures in a row; each flip is reported once.
httpGet succeeds on a status from 200 to 399, tcpSocket on a connection, exec on exit 0
(the command runs inside the container's mount namespace, with its environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from lightkube.models.core_v1 import Probe

NSENTER = "/usr/bin/nsenter"
USER_AGENT = "kube-probe/1.20"


@dataclass(frozen=True)
class ProbeTarget:
    host: str  # the pod IP
    ports: dict[str, int]  # the container's named ports
    pid: int  # the container's main process, for exec probes
    env: dict[str, str]
    working_dir: str


class ProbeFailure(Exception):
    pass


def _port(port: int | str, target: ProbeTarget) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port not in target.ports:
        raise ProbeFailure(f"no container port named {port!r}")
    return target.ports[port]


async def _http_get(probe: Probe, target: ProbeTarget) -> str:
    action = probe.httpGet
    assert action is not None
    host = action.host or target.host
    port = _port(action.port, target)
    tls = None
    if (action.scheme or "HTTP").upper() == "HTTPS":
        tls = ssl._create_unverified_context()  # the kubelet does not verify either
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
        headers.update({h.name: h.value for h in action.httpHeaders or []})
        headers["Connection"] = "close"
        head = f"GET {action.path or '/'} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        await writer.drain()
        status_line = (await reader.readline()).decode("latin-1").split()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ProbeFailure(f"malformed HTTP answer from {host}:{port}")
    code = int(status_line[1])
    if not 200 <= code < 400:
        raise ProbeFailure(f"HTTP probe failed with statuscode: {code}")
    return f"HTTP {code}"


async def _tcp(probe: Probe, target: ProbeTarget) -> str:
    action = probe.tcpSocket
    assert action is not None
    host = action.host or target.host
    port = _port(action.port, target)
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"connected to {host}:{port}"


async def _exec(probe: Probe, target: ProbeTarget, timeout_s: float) -> str:
    assert probe.exec is not None
    command = probe.exec.command or []
    proc = await asyncio.create_subprocess_exec(
        NSENTER, f"--target={target.pid}", "--mount", f"--wd={target.working_dir}", "--",
        *command,
        env=target.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    if proc.returncode != 0:
        text = output.decode(errors="replace")[-1024:]
        raise ProbeFailure(f"command {command} exited with {proc.returncode}: {text}")
    return "exit 0"


async def check(probe: Probe, target: ProbeTarget) -> tuple[bool, str]:
    """One probe attempt: (succeeded, what happened)."""
    timeout_s = float(probe.timeoutSeconds or 1)
    try:
        if probe.httpGet:
            detail = await asyncio.wait_for(_http_get(probe, target), timeout_s)
        elif probe.tcpSocket:
            detail = await asyncio.wait_for(_tcp(probe, target), timeout_s)
        elif probe.exec:
            detail = await _exec(probe, target, timeout_s)
        else:
            return False, "probe has no handler this node agent supports"
    except TimeoutError:
        return False, f"timeout after {timeout_s:g} s"
    except (OSError, ssl.SSLError, ProbeFailure) as exc:
        return False, str(exc) or type(exc).__name__
    return True, detail


async def run_probe(probe: Probe, target: ProbeTarget, report: Callable[[bool, str], None]) -> None:
    """Probe until cancelled, calling ``report`` whenever the result flips."""
    await asyncio.sleep(probe.initialDelaySeconds or 0)
    success_threshold = probe.successThreshold or 1
    failure_threshold = probe.failureThreshold or 3
    period = float(probe.periodSeconds or 10)
    successes = failures = 0
    result: bool | None = None
    while True:
        ok, detail = await check(probe, target)
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if ok and successes >= success_threshold and result is not True:
            result = True
            report(True, detail)
        elif not ok and failures >= failure_threshold and result is not False:
            result = False
            report(False, detail)
        await asyncio.sleep(period)
