"""The control plane's side of the router: its supervisor, its sockets, its route table.

Every socket is bound here and handed to the router's supervisor
(``router/supervisor.py``), which runs in a session of its own and keeps the
workers running, so the router serves on while the control plane is down.  With
several workers each gets its own listening socket on the same port
(``SO_REUSEPORT``: the kernel spreads the connections) and its own admin port.
What a later control plane needs to adopt the router (its process, ports and
settings) is written to ``router/router.json`` in the workspace.  Tables are
pushed as plain JSON with a revision, to each worker its share of the slots
(``control/shares.py``), and written to a file per worker first, so a worker
started again while nobody pushes still has its table; ``publish`` returns once
every worker has it in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from modelport.compute.layout import request_log_dir, request_log_on
from modelport.compute.local.records import (
    is_running,
    read_json,
    start_time,
    stop_processes,
    write_json,
)
from modelport.compute.shares import merge_stats, worker_table
from modelport.control.sockets import bind_socket
from modelport.control.tls import TlsSettings
from modelport.home import open_private
from modelport.httpserver import Limits

log = logging.getLogger("modelport.control")
STOP_TIMEOUT_S = 45.0
WATCH_S = 0.5


def router_dir(home: Path) -> Path:
    return home / "router"


class RouterProcess:
    """The router: a supervisor and its ``workers`` processes sharing one scoring port."""

    def __init__(
        self,
        home: Path,
        host: str,
        port: int,
        token: str,
        workers: int = 1,
        log_path: Path | None = None,
        tls: TlsSettings | None = None,
        limits: Limits | None = None,
    ) -> None:
        """``limits``: what one client may hold of a worker's scoring port (None: the
        router's defaults, ``router/__main__.py``)."""
        if workers < 1:
            raise ValueError("the router needs at least one worker")
        self.home = home
        self.host = host
        self.port = port
        self.token = token
        self.workers = workers
        self.tls = tls
        self.limits = limits
        # The request log is on unless the server's environment says ``off``.
        self.request_log = request_log_on()
        self.log_path = log_path or home / "logs" / "router.log"
        self.admin_ports: list[int] = []
        self.pid: int | None = None
        self.started: int | None = None
        self.table: dict[str, Any] = {"revision": 0, "services": {}}
        self._proc: asyncio.subprocess.Process | None = None
        self._client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def state_path(self) -> Path:
        return router_dir(self.home) / "router.json"

    @property
    def admin_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.admin_ports]

    @property
    def admin_url(self) -> str:
        return self.admin_urls[0]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    # -- starting or adopting ---------------------------------------------------------
    async def start(self) -> None:
        """Adopt the router a previous control plane left running, else start one."""
        if not await self._adopt():
            await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._keep_running())

    async def _adopt(self) -> bool:
        state = read_json(self.state_path)
        if state is None or not is_running(int(state["pid"]), int(state["started"])):
            return False
        same = (
            state["host"] == self.host
            and state["workers"] == self.workers
            and (self.port in (0, state["port"]))
            and state.get("tls") == (self.tls.record() if self.tls else None)
            and state.get("limits") == self._limits_record()
            and state.get("requestLog") == self.request_log  # absent: from before the log
        )
        self.pid, self.started = int(state["pid"]), int(state["started"])
        self.admin_ports = [int(p) for p in state["adminPorts"]]
        revisions = await asyncio.gather(*(self._revision(u) for u in self.admin_urls))
        if not same or any(r is None for r in revisions):
            why = "other settings" if not same else "workers that do not answer"
            log.info("replacing the running router (%s)", why)
            await self._stop_process()
            self.admin_ports = []
            return False
        self.port = int(state["port"])
        self.table["revision"] = max(r for r in revisions if r is not None)
        log.info("adopted the running router (pid %d) on port %d", self.pid, self.port)
        return True

    async def _revision(self, admin_url: str) -> int | None:
        try:
            response = await self._client.get(f"{admin_url}/healthz")
        except httpx.TransportError:
            return None
        return int(response.json()["revision"]) if response.status_code == 200 else None

    async def _spawn(self) -> None:
        # A plain bind first: it fails if anything holds the port, whereas a
        # SO_REUSEPORT bind would quietly share it with another such server.
        scoring = [bind_socket(self.host, self.port, flag="--router-port")]
        self.port = scoring[0].getsockname()[1]
        if self.workers > 1:
            scoring.pop().close()
            scoring = [
                bind_socket(self.host, self.port, flag="--router-port", reuse_port=True)
                for _ in range(self.workers)
            ]
        admins = [bind_socket("127.0.0.1", 0) for _ in range(self.workers)]
        self.admin_ports = [s.getsockname()[1] for s in admins]
        folder = router_dir(self.home)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write_tables()
        pairs = ",".join(f"{s.fileno()}:{a.fileno()}" for s, a in zip(scoring, admins, strict=True))
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k != "MODELPORT_DATABASE_URL" and not k.startswith("MODELPORT_ROUTER_")
            },
            "MODELPORT_ROUTER_TOKEN": self.token,
            "MODELPORT_ROUTER_SOCKETS": pairs,
            "MODELPORT_ROUTER_TABLE_DIR": str(folder),
            **(
                {"MODELPORT_ROUTER_REQUEST_LOG": str(request_log_dir(self.home))}
                if self.request_log
                else {}
            ),
            **(self.tls.router_env() if self.tls else {}),
            **({"MODELPORT_ROUTER_LIMITS": json.dumps(asdict(self.limits))} if self.limits else {}),
        }
        try:
            with open_private(self.log_path, "ab") as out:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "modelport.router.supervisor",
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    pass_fds=[s.fileno() for s in (*scoring, *admins)],
                    start_new_session=True,  # serves on while the control plane is down
                )
        finally:
            for sock in (*scoring, *admins):  # the supervisor holds them now
                sock.close()
        self.pid = self._proc.pid
        self.started = start_time(self.pid) or 0
        write_json(
            self.state_path,
            {
                "pid": self.pid,
                "started": self.started,
                "host": self.host,
                "port": self.port,
                "workers": self.workers,
                "adminPorts": self.admin_ports,
                "tls": self.tls.record() if self.tls else None,
                "limits": self._limits_record(),
                "requestLog": self.request_log,
            },
        )
        await self._push_all()

    def _limits_record(self) -> dict[str, Any] | None:
        return asdict(self.limits) if self.limits else None

    async def _keep_running(self) -> None:
        """Start the router again if its supervisor ends (it was killed from outside)."""
        while not self._stopping:
            if self._proc is not None:
                await self._proc.wait()
            else:
                while self._alive() and not self._stopping:
                    await asyncio.sleep(WATCH_S)
            if self._stopping:
                return
            log.error("the router supervisor exited; starting the router again")
            self._proc = None
            await asyncio.sleep(WATCH_S)
            await self._spawn()

    def _alive(self) -> bool:
        return self.pid is not None and is_running(self.pid, self.started or 0)

    # -- tables and counters ------------------------------------------------------------
    def _write_tables(self) -> None:
        for index in range(self.workers):
            table = worker_table(self.table, index, self.admin_ports)
            write_json(router_dir(self.home) / f"table-{index}.json", table)

    async def _push(self, admin_url: str, table: dict[str, Any]) -> None:
        """Send a table until the worker has it (it may be starting or restarting)."""
        wanted = table["revision"]
        for _ in range(200):
            try:
                response = await self._client.put(f"{admin_url}/routes", content=json.dumps(table))
                if response.status_code == 200 and response.json()["revision"] >= wanted:
                    return
            except httpx.TransportError:
                pass
            if self._stopping or not self._alive():
                return  # _keep_running starts it again with the table file
            await asyncio.sleep(0.05)
        log.error("router worker at %s did not take route table %d", admin_url, wanted)

    async def _push_all(self) -> None:
        async with self._lock:
            table = self.table  # a newer one may have come while we waited
            await asyncio.gather(
                *(
                    self._push(url, worker_table(table, i, self.admin_ports))
                    for i, url in enumerate(self.admin_urls)
                )
            )

    async def publish(
        self,
        services: dict[str, Any],
        endpoints: dict[str, Any] | None = None,
        tokens: dict[str, Any] | None = None,
    ) -> None:
        """``endpoints``: name -> {"versions": [{"name", "share", "route"}]}, each version's
        route one of ``services`` (``"hidden": true`` there: reached only through it).
        Optional per endpoint: ``"sticky": {"header"|"cookie": name}``; ``"shadows":
        [{"name", "route", "percent"}]`` with ``"tolerance"`` (1e-6) and
        ``"maxMirroredInFlight"`` (64); see ``router/endpoint.py``.  ``tokens``:
        ``{"issuer", "keys": [public JWK]}`` for token-auth routes (``router/auth.py``)."""
        self.table = {
            "revision": self.table["revision"] + 1,
            "services": services,
            **({"endpoints": endpoints} if endpoints else {}),
            **({"tokens": tokens} if tokens else {}),
        }
        self._write_tables()
        await self._push_all()

    async def stats(self) -> dict[str, Any] | None:
        """Every worker's per-service counters added up, or None while one cannot answer."""
        snapshots = await asyncio.gather(*(self._stats(u) for u in self.admin_urls))
        if any(s is None for s in snapshots):
            return None
        return merge_stats([s for s in snapshots if s is not None])

    async def _stats(self, admin_url: str) -> dict[str, Any] | None:
        try:
            response = await self._client.get(f"{admin_url}/stats")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    # -- stopping -----------------------------------------------------------------------
    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._stop_process()
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        await self._client.aclose()

    async def _stop_process(self) -> None:
        await stop_pid(self.pid, self.started or 0, self._proc)
        self._proc = None


async def stop_pid(
    pid: int | None, started: int, proc: asyncio.subprocess.Process | None = None
) -> None:
    """SIGTERM a process we started (or adopted), then SIGKILL its group if it lingers."""
    if pid is not None:
        await asyncio.to_thread(stop_processes, [(pid, started)], STOP_TIMEOUT_S)
    if proc is not None:
        await proc.wait()  # reaped: it was our child
