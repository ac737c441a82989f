"""The SDK against a real server process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import filecmp
import hashlib
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelport import Environment, Model, Workspace
from modelport.errors import (
    InvalidInputError,
    NotFoundError,
    ServerUnavailableError,
    UnauthorizedError,
)
from tests.conftest import ServerProcess, new_database, run_concurrently, wait_for


@pytest.fixture
def ws(backend_server: ServerProcess) -> Iterator[Workspace]:
    with Workspace.from_config(backend_server.home) as workspace:
        yield workspace


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def reading_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server on each backend shared by the tests that only read from it."""
    folder = tmp_path_factory.mktemp(f"reading-{request.param}")
    proc = ServerProcess(folder / "home", new_database(request, request.param, folder))
    try:
        yield proc
    finally:
        proc.stop()


def make_folder(root: Path) -> Path:
    folder = root / "my_model"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(300_000))
    (folder / "nested" / "config.json").write_text('{"a": 1}')
    (folder / "nested" / "deeper" / "empty.txt").write_bytes(b"")
    return folder


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_register_list_show_download(ws: Workspace, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    models = [
        Model.register(
            ws,
            folder,
            "folder-model",
            tags={"run": str(i)},
            properties={"seed": "42"},
            description="three times",
            model_framework="ScikitLearn",
            model_framework_version="1.5.2",
        )
        for i in range(3)
    ]
    assert [m.version for m in models] == [1, 2, 3]
    assert [m.id for m in Model.list(ws, name="folder-model")] == [
        "folder-model:3",
        "folder-model:2",
        "folder-model:1",
    ]
    assert [m.version for m in Model.list(ws, tags=[["run", "1"]])] == [2]
    latest = Model(ws, "folder-model")
    assert latest.version == 3 and latest.model_framework == "ScikitLearn"
    assert Model(ws, id="folder-model:2").tags == {"run": "1"}
    path = Model(ws, "folder-model", version=1).download(tmp_path / "out")
    assert Path(path) == tmp_path / "out" / "my_model"
    assert same_tree(folder, Path(path))
    with pytest.raises(InvalidInputError, match="already exists"):
        latest.download(tmp_path / "out")
    assert same_tree(folder, Path(latest.download(tmp_path / "out", exist_ok=True)))


def test_single_file_model_keeps_its_name(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"pickle bytes")
    model = Model.register(ws, tmp_path / "model.pkl", "file-model")
    path = model.download(tmp_path / "dl")
    assert Path(path).name == "model.pkl" and Path(path).read_bytes() == b"pickle bytes"


def test_twenty_concurrent_registrations(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"concurrent")
    home = ws_home(ws)

    def register() -> int:
        with Workspace.from_config(home) as own:
            return Model.register(own, tmp_path / "m.bin", "raced").version

    versions = run_concurrently(register, 20)
    assert sorted(versions) == list(range(1, 21))


def ws_home(ws: Workspace) -> Path:
    return Path(ws.get_details()["home"])


def test_truncated_upload_leaves_nothing(ws: Workspace, backend_server: ServerProcess) -> None:
    content = os.urandom(200_000)
    digest = hashlib.sha256(content).hexdigest()
    url = urlsplit(backend_server.url)
    request = (
        f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {backend_server.token}\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    ).encode()
    uploads = backend_server.home / "artifacts" / "tmp"
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request + content[: len(content) // 2])
        wait_for(lambda: any(uploads.iterdir()), what="the server to start writing the upload")
    # the client died halfway: the partial file must go, and nothing may be stored
    wait_for(lambda: not any(uploads.iterdir()), what="the half upload to be discarded")
    assert not ws.client.exists(f"/api/v1/blobs/{digest}")
    assert not list((uploads.parent / "sha256").glob("*/*"))
    assert Model.list(ws) == []


def test_links_out_of_the_folder_are_refused(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / "inside-link.txt").symlink_to(folder / "ok.txt")
    model = Model.register(ws, folder, "links")
    assert sorted(f.path for f in model.files) == ["linked/inside-link.txt", "linked/ok.txt"]
    (folder / "escape.txt").symlink_to(secret)
    with pytest.raises(InvalidInputError, match="leads outside the model folder"):
        Model.register(ws, folder, "links")
    assert [m.version for m in Model.list(ws, name="links")] == [1]


def test_bad_input_errors(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        Model.register(ws, tmp_path / "nope", "m")
    (tmp_path / "f.bin").write_bytes(b"1")
    with pytest.raises(InvalidInputError, match="invalid model name"):
        Model.register(ws, tmp_path / "f.bin", "no spaces allowed")
    with pytest.raises(NotFoundError, match="model 'ghost' not found"):
        Model(ws, "ghost")
    Model.register(ws, tmp_path / "f.bin", "real")
    with pytest.raises(NotFoundError, match="model real:4 not found"):
        Model(ws, "real", version=4)


def test_environments(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.5.2\nnumpy\n")
    env = Environment.from_pip_requirements("sklearn-env", tmp_path / "requirements.txt")
    env.environment_variables["OMP_NUM_THREADS"] = "1"
    registered = env.register(ws)
    assert registered.version == "1"
    assert env.register(ws).version == "1"  # unchanged definition keeps its version
    got = Environment.get(ws, "sklearn-env")
    assert got.pip_packages() == ["scikit-learn==1.5.2", "numpy"]
    assert got.content_hash() == env.content_hash()
    assert set(Environment.list(ws)) == {"sklearn-env"}


def test_wrong_token_and_no_server(reading_server: ServerProcess, tmp_path: Path) -> None:
    with Workspace(reading_server.url, "wrong") as bad, pytest.raises(UnauthorizedError):
        Model.list(bad)
    with Workspace("http://127.0.0.1:9", "x") as nowhere:
        with pytest.raises(ServerUnavailableError) as info:
            Model.list(nowhere)
        assert "modelport up" in (info.value.hint or "")
    with pytest.raises(ServerUnavailableError, match="no workspace config"):
        Workspace.from_config(tmp_path / "elsewhere")


def test_config_file_is_private(reading_server: ServerProcess) -> None:
    mode = stat.S_IMODE((reading_server.home / "config.json").stat().st_mode)
    assert mode == 0o600
