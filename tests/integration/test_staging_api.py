"""The staging API in process: a generation's credential opens its files and nothing else."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelport.compute.kubernetes import credential
from modelport.compute.kubernetes.credential import Scope
from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace

TOKEN = "t" * 43
SCORE = b"def init():\n    pass\n\n\ndef run(raw):\n    return raw\n"


@dataclass
class Staged:
    client: TestClient
    ws: ServerWorkspace
    scope: Scope
    blobs: dict[str, str]  # name -> sha256

    def token(
        self, scope: Scope | None = None, now: float | None = None, ttl_s: float = 600
    ) -> str:
        key = credential.signing_key(self.ws.home)
        return credential.mint(key, scope or self.scope, now=now, ttl_s=ttl_s).token

    def get(self, path: str, token: str | None) -> object:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        # the admin token the client sends by default is replaced, never added to
        return self.client.get(path, headers=headers or {"Authorization": ""})


def _put(client: TestClient, content: bytes) -> dict[str, object]:
    digest = hashlib.sha256(content).hexdigest()
    assert client.put(f"/api/v1/blobs/{digest}", content=content).status_code == 201
    return {"sha256": digest, "size": len(content)}


@contextmanager
def staged_workspace(tmp_path: Path) -> Iterator[Staged]:
    """A workspace with service iris at generation 2, and a client of its API."""
    ws = ServerWorkspace.open(tmp_path / "home", None, TOKEN)
    with TestClient(create_app(ws), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        weights = _put(client, b"weights")
        model = {
            "name": "model",
            "kind": "folder",
            "basename": "net",
            "files": [{"path": "net/w.bin", **weights}],
        }
        assert client.post("/api/v1/models", json=model).status_code == 201
        other = {
            "name": "other",
            "kind": "file",
            "basename": "o.bin",
            "files": [{"path": "o.bin", **_put(client, b"not staged")}],
        }
        assert client.post("/api/v1/models", json=other).status_code == 201
        score = _put(client, SCORE)
        snapshot = {"basename": "src", "files": [{"path": "score.py", **score}]}
        sid = client.post("/api/v1/snapshots", json=snapshot).json()["id"]
        spec = {"models": ["model:1"], "snapshot": sid}
        ws.services.create("iris", spec, (None, None), overwrite=False)
        ws.services.create("iris", spec, (None, None), overwrite=True)  # generation 2
        blobs = {"weights": str(weights["sha256"]), "score": str(score["sha256"])}
        blobs["other"] = hashlib.sha256(b"not staged").hexdigest()
        yield Staged(client, ws, Scope("iris", 2, sid, ("model:1",)), blobs)
    ws.close()


@pytest.fixture
def staged(tmp_path: Path) -> Iterator[Staged]:
    with staged_workspace(tmp_path) as found:
        yield found


def _error(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "hint"}, body
    return str(body["error"]["message"])


def test_the_layout_places_files_as_the_local_target(staged: Staged) -> None:
    response = staged.get("/api/v1/staging/iris/2", staged.token())
    assert response.status_code == 200, response.text
    layout = response.json()
    assert layout["files"] == [
        {"path": "src/score.py", "sha256": staged.blobs["score"], "size": len(SCORE)},
        {"path": "azureml-models/model/1/net/w.bin", "sha256": staged.blobs["weights"], "size": 7},
    ]
    assert layout["folders"] == ["azureml-models/model/1", "azureml-models/model/1/net"]
    assert layout["snapshot"]["basename"] == "src"
    assert [(m["name"], m["version"], m["kind"]) for m in layout["models"]] == [
        ("model", 1, "folder")
    ]


def test_a_blob_of_the_generation_is_served(staged: Staged) -> None:
    sha = staged.blobs["weights"]
    response = staged.get(f"/api/v1/staging/iris/2/blobs/{sha}", staged.token())
    assert response.status_code == 200
    assert response.content == b"weights"


def test_a_blob_of_another_model_is_not(staged: Staged) -> None:
    sha = staged.blobs["other"]
    message = _error(staged.get(f"/api/v1/staging/iris/2/blobs/{sha}", staged.token()), 404)
    assert message == f"blob {sha} is not part of service iris generation 2"


def test_a_credential_opens_its_own_generation_only(staged: Staged) -> None:
    message = _error(staged.get("/api/v1/staging/iris/1", staged.token()), 404)
    assert (
        message == "this credential stages service iris generation 2, not service iris generation 1"
    )
    sha = staged.blobs["score"]
    _error(staged.get(f"/api/v1/staging/iris/1/blobs/{sha}", staged.token()), 404)


def test_an_older_generation_still_stages_after_the_service_moved_on(staged: Staged) -> None:
    older = Scope("iris", 1, staged.scope.snapshot, staged.scope.models)
    assert staged.get("/api/v1/staging/iris/1", staged.token(older)).status_code == 200


def test_an_expired_credential_is_a_clear_401(staged: Staged) -> None:
    token = staged.token(now=time.time() - 3600, ttl_s=600)
    response = staged.get("/api/v1/staging/iris/2", token)
    message = _error(response, 401)
    assert message.startswith("the staging credential of service iris generation 2 expired at ")
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_admin_token_opens_no_staging_call(staged: Staged) -> None:
    message = _error(staged.get("/api/v1/staging/iris/2", TOKEN), 401)
    assert message.startswith("not a valid staging credential")
    _error(staged.get(f"/api/v1/staging/iris/2/blobs/{staged.blobs['score']}", TOKEN), 401)


def test_no_credential_is_a_401(staged: Staged) -> None:
    message = _error(staged.get("/api/v1/staging/iris/2", None), 401)
    assert message == "a staging credential is required (Authorization: Bearer ...)"


def test_a_staging_credential_opens_no_management_call(staged: Staged) -> None:
    token = staged.token()
    for path in ("/api/v1/models", "/api/v1/services/iris", "/openapi.json"):
        _error(staged.get(path, token), 401)
    _error(staged.get(f"/api/v1/blobs/{staged.blobs['weights']}", token), 401)


def test_a_deleted_service_stages_nothing(staged: Staged) -> None:
    token = staged.token()
    staged.ws.services.remove("iris")
    assert _error(staged.get("/api/v1/staging/iris/2", token), 404) == "service iris not found"
