"""The data plane on its own: serving that outlives the control plane, probes, lifecycle."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from modelport import InferenceConfig, Model, Webservice, Workspace
from modelport.compute.local.records import load_deployment, load_records
from modelport.control.orphans import running_supervisors, stop_data_plane
from modelport.errors import NotFoundError
from tests.conftest import ServerProcess, alive, descendants, wait_for
from tests.e2e.test_services import fixed, post, source


class Load:
    """Clients scoring in a loop until stopped; every answer (or failure) is kept, with
    the endpoint version that served it (``answered``) where there is one."""

    def __init__(self, url: str, key: str, clients: int = 3) -> None:
        self.url, self.key = url, key
        self.results: list[int | str] = []
        self.answered: list[str] = []
        self.refusals: list[str] = []  # the body of each answer other than 200, to say why
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        deadline = time.monotonic() + 180  # a runaway test still ends
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.post(self.url, json={"x": [1]}, headers=headers)
                    self.results.append(r.status_code)
                    self.answered.append(r.headers.get("azureml-model-deployment", ""))
                    if r.status_code != 200:
                        self.refusals.append(f"{r.status_code} {r.text[:300]}")
                except httpx.HTTPError as exc:
                    self.results.append(type(exc).__name__)

    def wait_more(self, count: int, what: str) -> None:
        start = len(self.results)
        wait_for(lambda: len(self.results) >= start + count, timeout_s=60, what=what)

    def stop(self) -> list[int | str]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        return self.results


def supervisors(home: Path) -> set[int]:
    return {pid for pid, _ in running_supervisors(home)}


def test_serving_outlives_a_killed_control_plane_and_is_adopted(
    model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    with Workspace.from_config(server.home) as ws:
        service = Model.deploy(ws, "durable-svc", [model], source(tmp_path), fixed(2))
        service.wait_for_deployment()
        keys = service.get_keys()
        ports = sorted(r["port"] for r in service.serialize()["replicas"])
    family = descendants(server.proc.pid)  # router, its workers, shims and replicas
    load = Load(service.scoring_uri, keys[0])
    restarted: ServerProcess | None = None
    try:
        load.wait_more(30, "traffic to flow")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        load.wait_more(100, "answers while the control plane is down")
        assert all(alive(p) for p in family), "the data plane went down with the control plane"
        restarted = ServerProcess(server.home, router_port=None)
        with Workspace.from_config(server.home) as ws:
            again = Webservice(ws, "durable-svc")
            assert again.state == "Healthy" and again.get_keys() == keys
            assert sorted(r["port"] for r in again.serialize()["replicas"]) == ports
            assert again.scoring_uri == service.scoring_uri
        load.wait_more(100, "answers after the restart")
        results = load.stop()
        assert results and set(results) == {200}, sorted({str(r) for r in results})
        assert all(alive(p) for p in family), "the restarted control plane replaced processes"
        assert restarted.router_url == server.router_url
    finally:
        load.stop()
        if restarted is not None:
            restarted.stop()
        stop_data_plane(server.home)
    wait_for(lambda: not any(alive(p) for p in family), what="the adopted processes to stop")


def test_down_stops_a_data_plane_left_by_a_killed_control_plane(
    model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    with Workspace.from_config(server.home) as ws:
        Model.deploy(ws, "orphan-svc", [model], source(tmp_path), fixed(1)).wait_for_deployment()
    family = descendants(server.proc.pid)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    assert len(supervisors(server.home)) == 2  # the router's and the replica's
    assert stop_data_plane(server.home) == 2
    wait_for(lambda: not any(alive(p) for p in family), what="router and replica to stop")
    assert not supervisors(server.home)


def test_after_a_restart_without_replicas_the_service_reads_transitioning(
    model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "score.py").write_text(
        textwrap.dedent(
            """
            import time
            from pathlib import Path

            def init():
                gate = Path(Path(__file__).with_name("gate.txt").read_text())
                while not gate.exists():
                    time.sleep(0.05)

            def run(raw):
                return "ok"
            """
        )
    )
    gate = tmp_path / "gate"
    gate.touch()
    (slow / "gate.txt").write_text(str(gate))
    config = InferenceConfig(entry_script="score.py", source_directory=slow)
    with Workspace.from_config(server.home) as ws:
        service = Model.deploy(
            ws,
            "again-svc",
            [model],
            config,
            fixed(1, auth_enabled=False, max_request_wait_time=300),
        )
        service.wait_for_deployment()
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    stop_data_plane(server.home)  # as if the machine had restarted
    gate.unlink()  # the next init() waits until the gate is back
    restarted = ServerProcess(server.home, router_port=None)
    try:
        with Workspace.from_config(server.home) as ws:
            again = Webservice(ws, "again-svc")
            assert again.state == "Transitioning"
            starting = httpx.post(again.scoring_uri, content=b"{}", timeout=30)
            assert starting.status_code == 503, starting.text
            assert starting.json()["error"]["code"] == "service_starting"
            gate.touch()
            again.wait_for_deployment(timeout_sec=60)
            assert again.state == "Healthy"
            assert httpx.post(again.scoring_uri, content=b"{}", timeout=30).json() == "ok"
    finally:
        restarted.stop()


PROBED = """
    import os, time
    from pathlib import Path

    def init():
        time.sleep(float(Path(__file__).with_name("init_s.txt").read_text()))

    def run(raw):
        return {"pid": os.getpid()}
"""


def probed_source(tmp_path: Path, init_s: float = 0) -> InferenceConfig:
    folder = tmp_path / "probed"
    folder.mkdir(exist_ok=True)
    (folder / "score.py").write_text(textwrap.dedent(PROBED))
    (folder / "init_s.txt").write_text(str(init_s))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def test_initial_delay_is_when_probing_starts_not_a_deadline(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    # init() takes 7 s; probing starts at 5 s, a probe a second, 3 misses to restart.
    config = fixed(
        1,
        auth_enabled=False,
        initial_delay_seconds=5,
        period_seconds=1,
        timeout_seconds=1,
        failure_threshold=3,
    )
    service = Model.deploy(ws, "slow-init", [model], probed_source(tmp_path, 7), config)
    service.wait_for_deployment(timeout_sec=90)
    replica = service.serialize()["replicas"][0]
    assert service.state == "Healthy" and replica["restarts"] == 0


def test_a_stopped_replica_is_restarted_after_its_failed_probes(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = fixed(
        1,
        auth_enabled=False,
        initial_delay_seconds=1,
        period_seconds=1,
        timeout_seconds=1,
        failure_threshold=2,
    )
    service = Model.deploy(ws, "frozen-svc", [model], probed_source(tmp_path), config)
    service.wait_for_deployment()
    pid = post(service, {}).json()["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing: only probes can tell

    def restarted_once() -> bool:
        service.update_deployment_state()
        replica = service.serialize()["replicas"][0]
        return replica["restarts"] == 1 and replica["state"] == "Ready"

    wait_for(restarted_once, timeout_s=60, what="one restart and Ready again")
    assert not alive(pid)
    assert post(service, {}).json()["pid"] != pid
    assert "restarting the replica: 2 liveness probes in a row failed" in service.get_logs()
    service.update_deployment_state()
    assert service.serialize()["replicas"][0]["restarts"] == 1


HANGING = """
    import time

    def init():
        time.sleep(3600)

    def run(raw):
        return "never"
"""


def test_a_hanging_init_shows_in_the_state_and_is_deleted_at_once(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "hang"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(HANGING))
    config = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "hang-svc", [model], config, fixed(1))

    def progress() -> str:
        service.update_deployment_state()
        return str(service.serialize()["deploymentStatus"].get("progress") or "")

    wait_for(lambda: "init() running for" in progress(), what="the hanging init() to show")
    assert service.state == "Transitioning" and "on replica 0" in progress()
    pids = {r["pid"] for r in service.serialize()["replicas"] if r.get("pid")}
    started = time.monotonic()
    service.delete()  # blocks until the service is gone, as v1's does
    assert time.monotonic() - started < 30
    with pytest.raises(NotFoundError):
        Webservice(ws, "hang-svc")
    wait_for(lambda: not any(alive(p) for p in pids), what="the replica to be stopped")


def test_replica_records_are_private_and_name_live_supervisors(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = Model.deploy(ws, "records-svc", [model], source(tmp_path), fixed(2))
    service.wait_for_deployment()
    spec = load_deployment(server.home / "services" / "records-svc" / "1")
    assert spec is not None
    records = load_records(spec)
    assert sorted(r.port for r in records) == sorted(
        r["port"] for r in service.serialize()["replicas"]
    )
    assert (spec.folder / "deployment.json").stat().st_mode & 0o777 == 0o600
    assert {r.shim_pid for r in records} <= supervisors(server.home)
