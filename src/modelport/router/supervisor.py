"""``python -m modelport.router.supervisor``: keeps the router's worker processes running.

The control plane binds every socket (a scoring and an admin socket per worker)
and starts this process in a session of its own with them, so the router serves
on while the control plane is down or restarting.  A worker that exits is
started again on the same sockets; it reads the last route table the control
plane wrote for it (``MODELPORT_ROUTER_TABLE_DIR/table-<i>.json``), so it serves at
once.  SIGTERM ends the workers (each finishes the requests it has), then this;
SIGHUP is passed on to every worker (each reloads its TLS certificate files).

Environment: ``MODELPORT_ROUTER_TOKEN``, ``MODELPORT_ROUTER_SOCKETS``
(``scoring_fd:admin_fd`` per worker, comma-separated), ``MODELPORT_ROUTER_TABLE_DIR``,
and with TLS ``MODELPORT_ROUTER_TLS_CERT``, ``MODELPORT_ROUTER_TLS_KEY`` (paths) and
``MODELPORT_ROUTER_PLAIN_HTTP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger("modelport.router")
RESTART_DELAY_S = 0.5
STOP_TIMEOUT_S = 40.0


def _pdeathsig() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Worker:
    def __init__(self, index: int, scoring_fd: int, admin_fd: int, env: dict[str, str]) -> None:
        self.index = index
        self.fds = (scoring_fd, admin_fd)
        self.env = {
            **env,
            "MODELPORT_ROUTER_FD": str(scoring_fd),
            "MODELPORT_ROUTER_ADMIN_FD": str(admin_fd),
            "MODELPORT_ROUTER_WORKER": str(index),
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelport.router",
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            pass_fds=self.fds,
            preexec_fn=_pdeathsig,
        )

    async def keep_running(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.spawn()
            assert self.proc is not None
            code = await self.proc.wait()
            if stopping.is_set():
                return
            log.error("router worker %d exited with code %s; starting it again", self.index, code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RESTART_DELAY_S)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def wait(self) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def _forward(workers: list[Worker], sig: int) -> None:
    for worker in workers:
        worker.signal(sig)


async def supervise(workers: list[Worker]) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, _forward, workers, signal.SIGHUP)
    tasks = [loop.create_task(w.keep_running(stopping)) for w in workers]
    await stopping.wait()
    for w in workers:
        w.terminate()
    await asyncio.gather(*(w.wait() for w in workers))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[supervisor]: %(message)s",
    )
    env = dict(os.environ)
    if not env.get("MODELPORT_ROUTER_TOKEN"):
        print("MODELPORT_ROUTER_TOKEN is not set", file=sys.stderr)
        return 2
    env.pop("MODELPORT_ROUTER_SOCKETS", None)
    pairs = os.environ["MODELPORT_ROUTER_SOCKETS"].split(",")
    workers = []
    for index, pair in enumerate(pairs):
        scoring, admin = (int(fd) for fd in pair.split(":"))
        workers.append(Worker(index, scoring, admin, env))
    asyncio.run(supervise(workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
