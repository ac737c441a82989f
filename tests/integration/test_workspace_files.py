"""The workspace's files hold service keys: owner-only, whatever the umask or their past."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelport.control.workspace import ServerWorkspace
from modelport.spec.model import ModelFile, ModelRegistration
from tests.conftest import ServerProcess

TOKEN = "t" * 43


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask: modes must come from the code, not from the caller."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _write_something(ws: ServerWorkspace) -> None:
    digest, size = ws.blobs.put_stream(io.BytesIO(b"w"))
    file = ModelFile(path="m.bin", sha256=digest, size=size)
    ws.models.register(ModelRegistration(name="m", kind="file", basename="m.bin", files=[file]))


def test_a_new_workspace_is_owner_only(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    ws = ServerWorkspace.open(home, None, TOKEN)
    try:
        _write_something(ws)
        assert mode(home) == 0o700
        database = home / "workspace.db"
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert path.exists() and mode(path) == 0o600, path
        assert mode(home / "secrets.key") == 0o600  # what seals the database's secrets
    finally:
        ws.close()


def test_the_sealing_key_stays_in_the_workspace_folder_with_postgresql(
    tmp_path: Path, open_umask: None, database_url: str
) -> None:
    home = tmp_path / "pg-home"
    ws = ServerWorkspace.open(home, database_url, TOKEN)
    try:
        assert mode(home) == 0o700 and mode(home / "secrets.key") == 0o600
        assert ws.db.box.open(ws.db.box.seal("k")) == "k"
    finally:
        ws.close()


def test_an_older_workspace_is_tightened_when_opened(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True, mode=0o755)  # as `modelport up --detach` leaves it
    home.chmod(0o755)
    ws = ServerWorkspace.open(home, None, TOKEN)
    _write_something(ws)
    ws.close()
    database = home / "workspace.db"
    companions = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    for path in companions:
        if path.exists():
            path.chmod(0o644)
    ws = ServerWorkspace.open(home, None, TOKEN)
    try:
        assert mode(home) == 0o700
        assert all(mode(p) == 0o600 for p in companions if p.exists())
    finally:
        ws.close()


def test_the_running_server_keeps_its_files_owner_only(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home")
    try:
        content = b"weights"
        digest = hashlib.sha256(content).hexdigest()
        headers = {"Authorization": f"Bearer {server.token}"}
        response = httpx.put(
            f"{server.url}/api/v1/blobs/{digest}", content=content, headers=headers
        )
        assert response.status_code == 201
        home = server.home
        database = home / "workspace.db"
        assert mode(home) == 0o700
        assert mode(home / "config.json") == 0o600
        assert mode(home / "secrets.key") == 0o600
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert mode(path) == 0o600, path
    finally:
        server.stop()
