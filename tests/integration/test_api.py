"""The management API in process: auth, the one error shape, uploads."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace
from modelport.store.tables import SnapshotRow

TOKEN = "t" * 43


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    ws = ServerWorkspace.open(tmp_path / "home", None, TOKEN)
    yield create_app(ws)
    ws.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def _error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"code", "message", "hint"}
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


def _upload(client: TestClient, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    response = client.put(f"/api/v1/blobs/{digest}", content=content)
    assert response.status_code == 201, response.text
    return digest


def _register(client: TestClient, name: str, content: bytes = b"weights") -> dict:  # type: ignore[type-arg]
    digest = _upload(client, content)
    body = {
        "name": name,
        "kind": "file",
        "basename": "model.bin",
        "files": [{"path": "model.bin", "sha256": digest, "size": len(content)}],
    }
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/models"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/route"),
        ("POST", "/api/v1/environments"),
        ("PUT", "/api/v1/blobs/" + "a" * 64),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_every_call_needs_the_admin_token(
    app: FastAPI, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    with TestClient(app, raise_server_exceptions=False) as anonymous:
        response = anonymous.request(method, path, headers=headers)
    assert response.status_code == 401
    assert _error(response)["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_liveness_is_open_and_tells_nothing_else(app: FastAPI) -> None:
    with TestClient(app, raise_server_exceptions=False) as anonymous:
        live = anonymous.get("/healthz")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        # Only the exact path, only to read: nothing beside it opens up.
        for method, path in [("POST", "/healthz"), ("GET", "/healthz/x"), ("GET", "/healthz/")]:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path)


def test_openapi_is_served_with_the_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/models" in spec["paths"] and "/api/v1/environments" in spec["paths"]


def test_error_shapes_are_one_shape(client: TestClient) -> None:
    cases = [
        (client.get("/api/v1/models/ghost"), 404, "not_found"),
        (client.get("/api/v1/models/ghost/versions/abc"), 400, "invalid_input"),
        (client.get("/api/v1/nothing-here"), 404, "not_found"),
        (client.delete("/api/v1/environments"), 405, "method_not_allowed"),
        (client.post("/api/v1/models", json={"name": "bad name"}), 400, "invalid_input"),
        (
            client.post(
                "/api/v1/models", content=b"{not json", headers={"content-type": "application/json"}
            ),
            400,
            "invalid_input",
        ),
        (
            client.post("/api/v1/environments", json={"name": "e", "pyton": {}}),
            400,
            "invalid_configuration",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert _error(response)["code"] == code


def test_unknown_model_names_the_name(client: TestClient) -> None:
    _register(client, "known")
    response = client.get("/api/v1/models/known/versions/5")
    assert response.status_code == 404
    assert _error(response)["message"] == "model known:5 not found in the workspace"


def test_blob_upload_is_verified_against_its_digest(client: TestClient, tmp_path: Path) -> None:
    response = client.put("/api/v1/blobs/" + "0" * 64, content=b"not matching")
    assert response.status_code == 400 and "sha256" in _error(response)["message"]
    assert not list((tmp_path / "home" / "artifacts" / "sha256").glob("*/*"))
    assert list((tmp_path / "home" / "artifacts" / "tmp").iterdir()) == []
    response = client.put("/api/v1/blobs/not-a-digest", content=b"x")
    assert response.status_code == 400


def test_upload_register_download(client: TestClient) -> None:
    model = _register(client, "m", b"\x00\x01binary")
    assert model["id"] == "m:1" and model["size"] == 8
    assert client.head(f"/api/v1/blobs/{model['files'][0]['sha256']}").status_code == 200
    assert client.head("/api/v1/blobs/" + "1" * 64).status_code == 404
    response = client.get("/api/v1/models/m/versions/1/files/model.bin")
    assert response.content == b"\x00\x01binary"
    assert client.get("/api/v1/models/m/versions/1/files/other").status_code == 404
    assert _register(client, "m")["version"] == 2
    listed = client.get("/api/v1/models", params={"name": "m"}).json()["value"]
    assert [m["version"] for m in listed] == [2, 1]


def test_property_change_is_a_conflict(client: TestClient) -> None:
    _register(client, "m")
    ok = client.patch("/api/v1/models/m/versions/1", json={"addProperties": {"a": "1"}})
    assert ok.status_code == 200 and ok.json()["properties"] == {"a": "1"}
    clash = client.patch("/api/v1/models/m/versions/1", json={"addProperties": {"a": "2"}})
    assert clash.status_code == 409 and _error(clash)["code"] == "conflict"


def test_environment_register_unchanged_returns_200(client: TestClient) -> None:
    doc = {"name": "e", "python": {"condaDependencies": {"dependencies": [{"pip": ["numpy"]}]}}}
    first = client.post("/api/v1/environments", json=doc)
    assert first.status_code == 201 and first.json()["version"] == "1"
    again = client.post("/api/v1/environments", json=doc)
    assert again.status_code == 200 and again.json()["version"] == "1"
    assert again.json()["contentHash"] == first.json()["contentHash"]


def test_registry_password_is_not_echoed(client: TestClient) -> None:
    doc = {
        "name": "e",
        "docker": {
            "baseImage": "r.example/x:1",
            "baseImageRegistry": {"username": "u", "password": "s3cret"},
        },
    }
    response = client.post("/api/v1/environments", json=doc)
    assert "s3cret" not in response.text
    assert "s3cret" not in client.get("/api/v1/environments/e").text


@pytest.mark.parametrize(
    ("basename", "path"),
    [
        ("src", "../../escape.py"),
        ("src", "nested/../../escape.py"),
        ("src", "/etc/escape.py"),
        ("src", "./score.py"),
        ("src", "a\\..\\..\\escape.py"),
        ("../src", "score.py"),
    ],
)
def test_a_snapshot_path_out_of_its_folder_is_refused(
    app: FastAPI, client: TestClient, basename: str, path: str
) -> None:
    file = {"path": path, "sha256": _upload(client, b"print('out')\n"), "size": 13}
    response = client.post("/api/v1/snapshots", json={"basename": basename, "files": [file]})
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["code"] == "invalid_input" and "would escape its folder" in error["message"]
    with app.state.workspace.db.transaction() as session:
        assert session.query(SnapshotRow).count() == 0


def test_a_snapshot_inside_its_folder_is_stored(client: TestClient) -> None:
    file = {"path": "pkg/score.py", "sha256": _upload(client, b"print('in')\n"), "size": 12}
    response = client.post("/api/v1/snapshots", json={"basename": "src", "files": [file]})
    assert response.status_code == 201, response.text


@pytest.fixture
def backend_client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    ws = ServerWorkspace.open(tmp_path / "home", database_url, TOKEN)
    try:
        with TestClient(create_app(ws), raise_server_exceptions=False) as c:
            c.headers["Authorization"] = f"Bearer {TOKEN}"
            yield c
    finally:
        ws.close()


def test_a_value_the_database_cannot_hold_is_a_400_not_a_500(
    backend_client: TestClient, database_url: str
) -> None:
    """PostgreSQL text holds no NUL (SQLite does): refused as input, never an internal error."""
    _register(backend_client, "m")
    on_postgres = database_url.startswith("postgresql")
    update = backend_client.patch("/api/v1/models/m/versions/1", json={"description": "a\x00b"})
    lookup = backend_client.get("/api/v1/models/a%00b")
    if on_postgres:
        for response in (update, lookup):
            assert response.status_code == 400, response.text
            error = _error(response)
            assert error["code"] == "invalid_input" and "refused a value" in error["message"]
    else:
        assert update.status_code == 200 and lookup.status_code == 404


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/ws/x"),
            503,
            "storage_unavailable",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "/ws/y"), 507, "insufficient_storage"),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            503,
            "storage_unavailable",
        ),
    ],
)
def test_an_os_error_anywhere_is_a_storage_error_naming_the_file(
    app: FastAPI, client: TestClient, error: OSError, status: int, code: str
) -> None:
    @app.get("/api/v1/raising")
    def raising() -> None:
        raise error

    response = client.get("/api/v1/raising")
    assert response.status_code == status
    body = _error(response)
    assert body["code"] == code and error.strerror in body["message"]
    if error.filename:
        assert body["message"].startswith(f"cannot read or write {error.filename}: ")
