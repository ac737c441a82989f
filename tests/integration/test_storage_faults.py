"""Broken storage, made for real: each fault answers 503 (507 for no space) naming what
failed, and the very next request after the cause is gone works, with no restart.

Tests run as root, so file modes do not stop writes: the faults here are an obstacle
where a folder must be, a removed folder, ``chattr +i`` (the kernel refuses writes
even to root), a full tmpfs, and a PostgreSQL database made read-only.  The ones
that need a privilege the machine lacks are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace
from modelport.errors import InsufficientStorageError, StorageUnavailableError
from modelport.store.faults import os_fault
from tests.pgserver import PostgresCluster

TOKEN = "t" * 43


@contextlib.contextmanager
def api(home: Path, database_url: str | None = None) -> Iterator[TestClient]:
    ws = ServerWorkspace.open(home, database_url, TOKEN)
    try:
        with TestClient(create_app(ws), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {TOKEN}"
            yield client
    finally:
        ws.close()


def _upload(client: TestClient, content: bytes) -> Any:
    return client.put(f"/api/v1/blobs/{hashlib.sha256(content).hexdigest()}", content=content)


def _register(client: TestClient, content: bytes, name: str = "m", **extra: Any) -> Any:
    body = {
        "name": name,
        "kind": "file",
        "basename": "m.bin",
        "files": [
            {"path": "m.bin", "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
        ],
        **extra,
    }
    return client.post("/api/v1/models", json=body)


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_the_errors_of_the_system_are_mapped_by_kind() -> None:
    with open("/dev/full", "wb", buffering=0) as full, pytest.raises(OSError) as caught:
        full.write(b"x")  # /dev/full: every write is ENOSPC, a real one
    fault = os_fault(caught.value, "write", "/dev/full")
    assert type(fault) is InsufficientStorageError and fault.http_status == 507
    assert fault.message == "cannot write /dev/full: No space left on device (ENOSPC)"
    read_only = os_fault(OSError(errno.EROFS, "Read-only file system"), "write", "/x")
    assert type(read_only) is StorageUnavailableError and read_only.http_status == 503


def test_a_removed_artifacts_folder_is_made_again_by_the_next_upload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with api(home) as client:
        assert _upload(client, b"first").status_code == 201
        shutil.rmtree(home / "artifacts")
        assert _upload(client, b"second").status_code == 201
        assert _register(client, b"second").status_code == 201
        assert client.get("/api/v1/models/m/versions/1/files/m.bin").content == b"second"


def test_a_blob_folder_that_cannot_be_made_is_a_503_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    content = b"weights"
    digest = hashlib.sha256(content).hexdigest()
    with api(home) as client:
        obstacle = home / "artifacts" / "sha256" / digest[:2]
        obstacle.parent.mkdir(parents=True)
        obstacle.write_text("a file where the blob's folder must be")
        message = _error(_upload(client, content), 503, "storage_unavailable")
        assert str(obstacle / digest) in message and "(EEXIST)" in message
        assert list((home / "artifacts" / "tmp").iterdir()) == []  # nothing half-written
        obstacle.unlink()
        assert _upload(client, content).status_code == 201
        assert _register(client, content).status_code == 201


def test_an_upload_folder_that_is_not_a_folder_is_a_503_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with api(home) as client:
        uploads = home / "artifacts" / "tmp"
        uploads.rmdir()
        uploads.write_text("not a folder")
        message = _error(_upload(client, b"x"), 503, "storage_unavailable")
        assert str(uploads) in message and "(ENOTDIR)" in message
        uploads.unlink()
        assert _upload(client, b"x").status_code == 201


def test_a_blob_gone_from_the_store_is_a_503_on_download(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with api(home) as client:
        assert _upload(client, b"weights").status_code == 201
        assert _register(client, b"weights").status_code == 201
        shutil.rmtree(home / "artifacts")
        response = client.get("/api/v1/models/m/versions/1/files/m.bin")
        message = _error(response, 503, "storage_unavailable")
        assert "'m.bin' of model m:1 is missing from the artifact store" in message
        assert str(home / "artifacts" / "sha256") in message


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i``: writes fail with EPERM even for root (ext4, xfs, btrfs …)."""
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_an_unwritable_sqlite_database_is_a_503_naming_it_and_recovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    database = home / "workspace.db"
    with api(home) as client:
        assert _upload(client, b"weights").status_code == 201
        assert _register(client, b"weights").status_code == 201
        # The -shm file stays writable: SQLite maps it, and a refused page is SIGBUS.
        with immutable(database, Path(f"{database}-wal")):
            message = _error(_register(client, b"weights"), 503, "storage_unavailable")
            assert f"the workspace database {database} failed: disk I/O error" in message
            assert client.get("/api/v1/models/m").status_code == 200  # reads still work
        assert _register(client, b"weights").json()["version"] == 2


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"no tmpfs can be mounted here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def _fill(folder: Path) -> Path:
    """Write until the disk is full; returns the filler to remove."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_is_a_507_for_uploads_and_the_database_and_recovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with small_disk(home, "4m"), api(home) as client:
        assert _upload(client, b"weights").status_code == 201
        filler = _fill(home)
        message = _error(_upload(client, b"more" * 100_000), 507, "insufficient_storage")
        assert str(home / "artifacts" / "tmp" / "upload-") in message
        assert "No space left on device (ENOSPC)" in message
        assert list((home / "artifacts" / "tmp").iterdir()) == []
        # A long description needs new database pages, which a full disk cannot give.
        response = _register(client, b"weights", description="d" * 1_000_000)
        message = _error(response, 507, "insufficient_storage")
        assert f"the workspace database {home / 'workspace.db'} failed:" in message
        filler.unlink()
        assert _register(client, b"weights", description="d" * 1_000_000).status_code == 201
        assert _upload(client, b"more" * 100_000).status_code == 201


def test_a_read_only_postgres_database_is_a_503_and_the_next_write_after_works(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.create_database("read_only_spell")
    with api(tmp_path / "home", url) as client:
        assert _upload(client, b"weights").status_code == 201
        assert _register(client, b"weights").status_code == 201
        postgres.set_read_only("read_only_spell", True)
        message = _error(_register(client, b"weights"), 503, "storage_unavailable")
        assert f"the workspace database 'read_only_spell' on {postgres.dir}:" in message
        assert "read-only transaction" in message
        assert client.get("/api/v1/models/m").json()["version"] == 1  # reads still work
        postgres.set_read_only("read_only_spell", False)
        assert _register(client, b"weights").json()["version"] == 2
