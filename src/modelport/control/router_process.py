"""The control plane's side of the router: its process, its sockets, its route table.

Both sockets are bound here and handed to the router, so its scoring address
stays the same across router restarts.  Tables are pushed as plain JSON with a
revision; ``publish`` returns once the router has that revision in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from modelport.compute.local.replica import set_pdeathsig
from modelport.control.sockets import bind_socket

log = logging.getLogger("modelport.control")
RESTART_DELAY_S = 0.5


class RouterProcess:
    def __init__(self, host: str, port: int, token: str, log_path: Path) -> None:
        self.scoring = bind_socket(host, port, flag="--router-port")
        self.admin = bind_socket("127.0.0.1", 0)
        self.port: int = self.scoring.getsockname()[1]
        self.host = host
        self.token = token
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.table: dict[str, Any] = {"revision": 0, "services": {}}
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.admin.getsockname()[1]}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin.getsockname()[1]}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

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
        await self._push()

    async def _watch(self) -> None:
        """Restart the router if it dies, then give it the current table again."""
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("the router exited with code %s; restarting it", code)
            await asyncio.sleep(RESTART_DELAY_S)
            await self._spawn()

    async def stats(self) -> dict[str, Any] | None:
        """The router's per-service counters, or None while it cannot answer."""
        try:
            response = await self._client.get("/stats")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    async def publish(self, services: dict[str, Any]) -> None:
        self.table = {"revision": self.table["revision"] + 1, "services": services}
        await self._push()

    async def _push(self) -> None:
        """Send the latest table until the router has it (it may still be starting)."""
        async with self._lock:
            wanted = self.table["revision"]
            for _ in range(200):
                try:
                    response = await self._client.put("/routes", content=json.dumps(self.table))
                    if response.status_code == 200 and response.json()["revision"] >= wanted:
                        return
                except httpx.TransportError:
                    pass
                if self.proc is not None and self.proc.returncode is not None:
                    return  # _watch restarts it and pushes again
                await asyncio.sleep(0.05)
            log.error("the router did not take route table revision %d", wanted)

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
