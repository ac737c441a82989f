"""The replica sandbox's rules and the replica key, decided without a kernel or a socket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport.compute.local import sandbox
from modelport.compute.local.sandbox import READ_DIR, READ_ONLY, Confinement, Rule, plan
from modelport.httpserver import Request
from modelport.router.proxy import _encode_request
from modelport.router.table import RouteTable, build_table
from modelport.runtime import gate

HOME = "/tmp/pytest/home"
APP = f"{HOME}/services/iris/3/app"


def _confinement(*read_only: str) -> Confinement:
    return Confinement((APP,), ("/usr", *read_only), (HOME,))


def test_rights_follow_the_abi() -> None:
    assert sandbox.handled_rights(1) == (1 << 13) - 1
    assert sandbox.handled_rights(2) == (1 << 14) - 1  # + refer
    assert sandbox.handled_rights(4) == (1 << 15) - 1  # + truncate; 4 adds network only
    assert sandbox.handled_rights(7) == (1 << 16) - 1  # + ioctl on devices (5)


def test_a_rule_never_covers_the_workspace_home() -> None:
    rules, dropped = plan(_confinement("/tmp", "/tmp/pytest", HOME, f"{HOME}/runtime/ab"), 7)
    paths = {r.path for r in rules}
    assert dropped == ["/tmp", "/tmp/pytest", HOME]
    assert {APP, "/usr", f"{HOME}/runtime/ab"} <= paths  # folders inside it are fine
    assert plan(_confinement("/tmp/pytest-other"), 7)[1] == []


def test_read_only_and_read_write_rights() -> None:
    rules = {r.path: r.access for r in plan(_confinement(), 3)[0]}
    assert rules[APP] == sandbox.handled_rights(3)
    assert rules["/usr"] == READ_ONLY
    assert rules["/proc"] == READ_DIR  # listed, not read: another process's environ
    assert rules["/proc/cpuinfo"] == READ_ONLY
    assert "/proc/self" not in rules  # only in the replica's own process
    assert Rule("/proc/self", READ_ONLY) in plan(_confinement(), 3, own_proc=True)[0]


def test_the_environment_and_the_interpreter_are_readable(tmp_path: Path) -> None:
    venv = tmp_path / "envs" / "k"
    (venv / "bin").mkdir(parents=True)
    base = tmp_path / "python" / "bin" / "python3.11"
    base.parent.mkdir(parents=True)
    base.touch()
    (venv / "bin" / "python").symlink_to(base)
    assert sandbox.python_paths(str(venv / "bin" / "python")) == [
        os.path.realpath(venv),
        str(tmp_path / "python"),
    ]
    made = sandbox.confinement_for(tmp_path / "home", tmp_path / "home" / "app", str(base))
    assert made.guarded == (str(tmp_path / "home"),)
    assert str(tmp_path / "home" / "app") in made.read_write
    assert Confinement.from_dict(made.to_dict()) == made


# -- the replica key -------------------------------------------------------------------
def _route_table(key: object) -> RouteTable:
    svc = {"auth": False, "replicas": [["127.0.0.1", 1001]], "replicaKey": key}
    return build_table({"services": {"svc": svc}}, RouteTable())


def test_the_router_sends_the_replica_key_and_drops_a_clients() -> None:
    header = _route_table("k-1").routes["svc"].replica_header
    assert header == b"x-modelport-replica-key: k-1\r\n"
    forged = [(b"x-modelport-replica-key", b"guess"), (b"x-a", b"1")]
    data = _encode_request(Request("POST", "/score", "", forged), "/score", header)
    assert data.count(b"x-modelport-replica-key") == 1
    assert b"x-modelport-replica-key: k-1\r\n" in data and b"x-a: 1\r\n" in data


@pytest.mark.parametrize("key", [None, "", "a\r\nx-evil: 1", 7])
def test_no_header_from_a_missing_or_unsafe_key(key: object) -> None:
    assert _route_table(key).routes["svc"].replica_header == b""


def _request(*headers: tuple[bytes, bytes], method: str = "POST", path: str = "/score") -> Request:
    return Request(method, path, "", list(headers))


def test_the_runtime_admits_only_the_key_and_hides_it() -> None:
    key = b"k-1"
    right = _request((gate.HEADER, key), (b"x-a", b"1"))
    assert gate.admits(right, key)
    assert right.headers == [(b"x-a", b"1")]  # score.py never sees it
    assert not gate.admits(_request((gate.HEADER, b"k-2")), key)
    assert not gate.admits(_request((b"x-a", b"1")), key)
    # The router's copy comes first; a later one cannot replace it.
    assert not gate.admits(_request((gate.HEADER, b"no"), (gate.HEADER, key)), key)
    assert gate.is_liveness(_request(method="GET", path="/"))
    assert not gate.is_liveness(_request(method="POST", path="/"))


def test_the_key_leaves_the_environment() -> None:
    environ = {gate.KEY_VARIABLE: "k-1", "OTHER": "x"}
    assert gate.take_key(environ) == b"k-1"
    assert environ == {"OTHER": "x"}
    assert gate.take_key({}) is None


def test_a_services_replica_key_is_stable_and_the_workspaces_own() -> None:
    from modelport.store.secrets import SecretBox

    box, other = SecretBox.ephemeral(), SecretBox.ephemeral()
    key = box.derive("replica-key:iris")
    assert key == box.derive("replica-key:iris")  # every generation, every restart
    assert len(key) >= 43 and key.isascii() and key.isprintable()
    assert key not in (box.derive("replica-key:iris2"), other.derive("replica-key:iris"))


def test_up_says_plainly_when_nothing_isolates(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> int:
        raise sandbox.Unavailable("Landlock is not available on this kernel")

    monkeypatch.setattr(sandbox, "abi_version", unavailable)
    assert sandbox.describe() == (
        "isolation: NONE — Landlock is not available on this kernel: "
        "a score.py can read the workspace's secrets"
    )
    monkeypatch.setattr(sandbox, "abi_version", lambda: 7)
    assert sandbox.describe() == (
        "isolation: Landlock ABI 7 (score.py reads only its service's files)"
    )
