"""The control plane's side of the router: its worker processes, sockets and route table.

Every socket is bound here and handed to a worker, so the scoring address stays
the same across worker restarts.  With several workers each gets its own
listening socket on the same port (``SO_REUSEPORT``: the kernel spreads the
connections) and its own admin port; a worker that dies leaves its socket open
here, so connections waiting in its backlog are served by its successor.  Tables
are pushed as plain JSON with a revision, to each worker its share of the slots
(``control/shares.py``); ``publish`` returns once every worker has it in force.
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
from pathlib import Path
from typing import Any

import httpx

from modelport.compute.local.replica import set_pdeathsig
from modelport.control.shares import merge_stats, worker_table
from modelport.control.sockets import bind_socket

log = logging.getLogger("modelport.control")
RESTART_DELAY_S = 0.5


class RouterWorker:
    """One router process: its scoring socket, its admin port, restarted if it dies."""

    def __init__(self, index: int, scoring: socket.socket, token: str, log_path: Path) -> None:
        self.index = index
        self.scoring = scoring
        self.admin = bind_socket("127.0.0.1", 0)
        self.token = token
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.table: dict[str, Any] = {"revision": 0, "services": {}}
        self._client = httpx.AsyncClient(
            base_url=self.admin_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin.getsockname()[1]}"

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MODELPORT_ROUTER_TOKEN": self.token,
            "MODELPORT_ROUTER_FD": str(self.scoring.fileno()),
            "MODELPORT_ROUTER_ADMIN_FD": str(self.admin.fileno()),
            "MODELPORT_ROUTER_WORKER": str(self.index),
        }
        env.pop("MODELPORT_DATABASE_URL", None)  # the router needs no database secrets
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modelport.router",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(self.scoring.fileno(), self.admin.fileno()),
                preexec_fn=set_pdeathsig,
            )
        await self.push(self.table)

    async def _watch(self) -> None:
        """Restart the worker if it dies, then give it the current table again."""
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("router worker %d exited with code %s; restarting it", self.index, code)
            await asyncio.sleep(RESTART_DELAY_S)
            await self._spawn()

    async def stats(self) -> dict[str, Any] | None:
        try:
            response = await self._client.get("/stats")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    async def push(self, table: dict[str, Any]) -> None:
        """Send the latest table until the worker has it (it may still be starting)."""
        self.table = table
        async with self._lock:
            table = self.table  # a newer one may have come while we waited
            wanted = table["revision"]
            for _ in range(200):
                try:
                    response = await self._client.put("/routes", content=json.dumps(table))
                    if response.status_code == 200 and response.json()["revision"] >= wanted:
                        return
                except httpx.TransportError:
                    pass
                if self.proc is not None and self.proc.returncode is not None:
                    return  # _watch restarts it and pushes again
                await asyncio.sleep(0.05)
            log.error("router worker %d did not take route table %d", self.index, wanted)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
        self.scoring.close()
        self.admin.close()


class RouterProcess:
    """The router: ``workers`` processes sharing one scoring port."""

    def __init__(self, host: str, port: int, token: str, log_path: Path, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("the router needs at least one worker")
        # A plain bind first: it fails if anything holds the port, whereas a
        # SO_REUSEPORT bind would quietly share it with another such server.
        sockets = [bind_socket(host, port, flag="--router-port")]
        self.port: int = sockets[0].getsockname()[1]
        if workers > 1:
            sockets.pop().close()
            sockets = [
                bind_socket(host, self.port, flag="--router-port", reuse_port=True)
                for _ in range(workers)
            ]
        self.host = host
        self.workers = [RouterWorker(i, sock, token, log_path) for i, sock in enumerate(sockets)]
        self.table: dict[str, Any] = {"revision": 0, "services": {}}

    @property
    def admin_url(self) -> str:
        return self.workers[0].admin_url

    @property
    def admin_urls(self) -> list[str]:
        return [w.admin_url for w in self.workers]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await asyncio.gather(*(w.start() for w in self.workers))

    async def stats(self) -> dict[str, Any] | None:
        """Every worker's per-service counters added up, or None while one cannot answer."""
        snapshots = await asyncio.gather(*(w.stats() for w in self.workers))
        if any(s is None for s in snapshots):
            return None
        return merge_stats([s for s in snapshots if s is not None])

    async def publish(self, services: dict[str, Any]) -> None:
        self.table = {"revision": self.table["revision"] + 1, "services": services}
        ports = [w.admin.getsockname()[1] for w in self.workers]
        await asyncio.gather(
            *(w.push(worker_table(self.table, w.index, ports)) for w in self.workers)
        )

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))
