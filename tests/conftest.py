from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from modelport.home import read_config
from tests.pgserver import PostgresCluster

pytest_plugins = ["tests.kube.fixtures"]  # kube_cluster: a real Kubernetes test cluster

_db_counter = itertools.count()
T = TypeVar("T")


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def run_concurrently(task: Callable[[], T], count: int, timeout_s: float = 120.0) -> list[T]:
    """Start ``count`` threads together on ``task``; their results, or the first error."""
    results: list[T] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        try:
            results.append(task())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    assert not failures, failures
    assert len(results) == count, "some threads did not finish"
    return results


def _processes() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(stat.parent.name)] = int(fields[1])
    return out


def child_pids(parent: int | None = None) -> list[int]:
    """Live processes whose parent is ``parent`` (default: this test process)."""
    parent = os.getpid() if parent is None else parent
    return [pid for pid, ppid in _processes().items() if ppid == parent]


def descendants(root: int) -> set[int]:
    procs = _processes()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    return pid in _processes()


def workspace_processes(root: Path) -> list[int]:
    """Live processes started for a workspace under ``root`` (its MODELPORT_HOME).

    Routers and replica supervisors run in sessions of their own and outlive a
    killed server, so they are found by their environment, not as our children.
    """
    marker = f"MODELPORT_HOME={root}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes() and alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


_TERMINAL_SIZE = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """pytest-xdist, in the controller: hand the workers this session's terminal size."""
    node.workerinput["terminal_size"] = {name: os.environ.get(name) for name in _TERMINAL_SIZE}


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker runs with COLUMNS=80 and LINES=24 set; tools the tests run (uv)
    wrap their messages to COLUMNS, so a worker takes the session's values back."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    for name, value in workerinput["terminal_size"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist with ``--dist loadfile``: a module's tests run on one worker, so
    module-scoped set-up is made once, and every module that uses the Kubernetes test
    cluster runs on the same worker, so the session starts one cluster, not one per worker.
    (xdist's own ``loadgroup`` cannot do it here: the group it writes into a test's node id
    is lost on pytest 9.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    root = config.rootpath
    uses_cluster: dict[str, bool] = {}

    class ModuleScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path not in uses_cluster:
                file = root / path
                uses_cluster[path] = file.is_file() and "kube_cluster" in file.read_text()
            return "kube" if uses_cluster[path] else path

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def no_processes_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = set(child_pids())
    yield
    left = set(child_pids()) - before
    assert not left, f"processes left running by the tests: {sorted(left)}"
    orphans = workspace_processes(tmp_path_factory.getbasetemp())
    assert not orphans, f"routers or replicas left running by the tests: {sorted(orphans)}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend."""
    return new_database(request, request.param, tmp_path)


def new_database(request: pytest.FixtureRequest, backend: str, folder: Path) -> str:
    """The URL of a fresh, empty ``backend`` database (a SQLite one in ``folder``)."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'workspace.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"test_{os.getpid()}_{next(_db_counter)}")


class ServerProcess:
    """``modelport up --port 0`` as a real process, with its own MODELPORT_HOME."""

    def __init__(
        self,
        home: Path,
        database_url: str | None = None,
        router_port: str | None = "0",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        env = {**os.environ, **(env or {}), "MODELPORT_HOME": str(home)}
        env.pop("MODELPORT_DATABASE_URL", None)
        if database_url:
            env["MODELPORT_DATABASE_URL"] = database_url
        self.log = (home.parent / f"{home.name}-server.log").open("wb")
        command = [sys.executable, "-m", "modelport", "up", "--port", "0"]
        if router_port is not None:
            command += ["--router-port", router_port]
        command += args
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.env = env
        wait_for(self._ready, what="the server to write its config")
        config = read_config(home / "config.json")
        self.url: str = config["url"]
        self.token: str = config["token"]
        self.router_url: str = config["routerUrl"]

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            self.log.flush()
            raise AssertionError(
                "server exited: " + Path(self.log.name).read_text(errors="replace")[-3000:]
            )
        try:
            return read_config(self.home / "config.json").get("pid") == self.proc.pid
        except Exception:
            return False

    def stop(self) -> None:
        """Stop the server; its router and replicas must be gone with it."""
        from modelport.control.orphans import stop_data_plane

        family = descendants(self.proc.pid)
        try:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                self.log.close()
            wait_for(
                lambda: not any(alive(p) for p in family),
                timeout_s=15,
                what=f"the server's processes {sorted(family)} to exit",
            )
        finally:
            stop_data_plane(self.home)  # whatever a failed stop left (a no-op otherwise)


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[Path]:
    """A folder that both the test and a local replica's score.py may write to: a
    replica's sandbox keeps it out of tmp_path, but lets it write to /dev/shm."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="modelport-test-", dir=shm if shm.is_dir() else tmp_path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "home")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def backend_server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    """A server on each database backend (SQLite and PostgreSQL)."""
    proc = ServerProcess(tmp_path / "home", database_url)
    try:
        yield proc
    finally:
        proc.stop()
