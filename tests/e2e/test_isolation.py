"""A local service's score.py reaches its own files only, and only the router reaches it."""

from __future__ import annotations

import json
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelport import InferenceConfig, Model, Webservice, Workspace
from modelport.compute.local import sandbox
from modelport.home import runtime_dir
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_services import fixed, post, source

try:
    LANDLOCK_ABI = sandbox.abi_version()
except sandbox.Unavailable:
    LANDLOCK_ABI = 0
needs_landlock = pytest.mark.skipif(not LANDLOCK_ABI, reason="Landlock is not on this kernel")

PROBE = """
    import os, tempfile
    from pathlib import Path

    def init():
        pass

    def run(raw):
        import json
        body = json.loads(raw)
        attempts = {}
        for path in body["read"]:
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    Path(path).read_bytes()[:1]
                attempts[path] = "read"
            except OSError as exc:
                attempts[path] = type(exc).__name__
        own = Path(__file__).read_text()[:10]
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("scratch")
        scratch = Path(f.name).read_text()
        return {
            "attempts": attempts,
            "own": own,
            "scratch": scratch,
            "tmpdir": tempfile.gettempdir(),
            "home": os.environ["HOME"],
            "key": os.environ.get("MODELPORT_REPLICA_KEY"),
        }
"""


def _probe_source(tmp_path: Path) -> InferenceConfig:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(PROBE))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def _secrets(home: Path, server: ServerProcess) -> list[str]:
    """Every file of the workspace a scoring script must not read, that exists."""
    files = [
        home / "config.json",
        home / "workspace.db",
        home / "workspace.db-wal",
        home / "secrets.key",
        *sorted((home / "tls").glob("*-key.pem")),
        *sorted((home / "logs").glob("*.log")),
        *sorted((home / "router").glob("table-*.json")),  # they hold the replica keys
        home / "services" / "other",
        home / "services" / "other" / "logs",
        home,
        Path(f"/proc/{server.proc.pid}/environ"),
    ]
    return [str(f) for f in files if f.exists()]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with TLS keys in its home (``tls/*-key.pem``) besides its other secrets."""
    proc = ServerProcess(tmp_path / "home", args=("--tls", "self-signed"))
    try:
        yield proc
    finally:
        proc.stop()


@needs_landlock
def test_score_py_reads_no_secret_of_the_workspace(
    tls_server: ServerProcess, tmp_path: Path
) -> None:
    server = tls_server
    with Workspace.from_config(server.home) as ws:
        (tmp_path / "scaler").mkdir()
        (tmp_path / "scaler" / "w.json").write_text('{"scale": 10}')
        model = Model.register(ws, tmp_path / "scaler", "scaler")
        Model.deploy(ws, "other", [model], source(tmp_path), fixed(1)).wait_for_deployment()
        service = Model.deploy(ws, "probe", [model], _probe_source(tmp_path), fixed(1))
        service.wait_for_deployment()
        targets = _secrets(server.home, server)
        answer = service.run(json.dumps({"read": targets}))
        logs = service.get_logs()
    # The control: these exist, so a failed read below is the sandbox, not a typo.
    for name in ("config.json", "workspace.db", "workspace.db-wal", "secrets.key"):
        assert str(server.home / name) in targets
    for name in ("tls/server-key.pem", "tls/ca-key.pem", "services/other", "router/table-0.json"):
        assert str(server.home / name) in targets
    assert f"/proc/{server.proc.pid}/environ" in targets

    assert answer["attempts"] == {t: "PermissionError" for t in targets}
    assert answer["own"] == textwrap.dedent(PROBE)[:10]  # its own files it reads
    assert answer["scratch"] == "scratch"  # and its private TMPDIR it writes
    assert answer["tmpdir"] == answer["home"]
    assert Path(answer["tmpdir"]).parent.parent == server.home / "services" / "probe"
    assert answer["key"] is None  # taken out of the environment before score.py runs
    assert f"isolation: Landlock ABI {LANDLOCK_ABI}" in logs
    replica_logs = list((server.home / "services" / "probe" / "logs").glob("replica-*.log"))
    assert replica_logs and all(f.stat().st_mode & 0o777 == 0o600 for f in replica_logs)


def _replica_port(service: Webservice) -> int:
    replicas = service.serialize()["replicas"]
    return int(next(r["port"] for r in replicas if r["state"] == "Ready"))


def test_only_the_router_reaches_a_replica(
    server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "fenced", [model], source(tmp_path), fixed(1))
    service.wait_for_deployment()
    direct = f"http://127.0.0.1:{_replica_port(service)}"

    refused = httpx.post(f"{direct}/score", json={"x": [1]}, timeout=10)
    assert refused.status_code == 403
    assert "router" in refused.json()["message"]
    guessed = {"x-modelport-replica-key": "guess"}
    assert httpx.post(f"{direct}/score", json={}, headers=guessed).status_code == 403
    assert httpx.get(f"{direct}/swagger.json", timeout=10).status_code == 403
    assert httpx.get(f"{direct}/", timeout=10).text == "Healthy"  # liveness stays open

    # The router's own hop, a Unix socket, is the owner's alone and wants the key too.
    (path,) = runtime_dir(server.home).glob("fenced.*.0.http")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as uds:
        assert uds.post("http://replica/score", json={"x": [1]}).status_code == 403

    primary, _ = service.get_keys()
    assert post(service, {"x": [2]}, primary).json()["y"] == [20]
    # A client's own copy of the header is dropped by the router, not passed on.
    headers = {**guessed, "Authorization": f"Bearer {primary}"}
    through = httpx.post(service.scoring_uri, json={"x": [3]}, headers=headers, timeout=30)
    assert through.status_code == 200
    assert through.json()["y"] == [30]


def test_up_says_what_isolation_is_in_force(server: ServerProcess) -> None:
    log = Path(server.log.name)
    expected = sandbox.describe()
    assert expected.startswith("isolation: ")
    wait_for(lambda: expected in log.read_text(errors="replace"), what="the isolation line")
    if LANDLOCK_ABI:
        assert expected == (
            f"isolation: Landlock ABI {LANDLOCK_ABI} (score.py reads only its service's files)"
        )
