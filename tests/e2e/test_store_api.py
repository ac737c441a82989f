"""The store through a real server process: races, bad values, models in use, downloads.

The race tests run on SQLite and on PostgreSQL (``database_url``): concurrent HTTP
calls must end as the same calls made one after the other would.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport import AksWebservice, InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ConflictError, ModelportError, StorageUnavailableError
from tests.conftest import ServerProcess, run_concurrently, wait_for
from tests.pgserver import PostgresCluster

THREADS = 10
SCORE = b"def init():\n    pass\n\n\ndef run(raw):\n    return raw\n"
FIXED = {"computeType": "aks", "numReplicas": 1, "autoScaler": {"autoscaleEnabled": False}}


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60
    )


@pytest.fixture
def api(backend_server: ServerProcess) -> Iterator[httpx.Client]:
    with _client(backend_server) as client:
        yield client


def _put(client: httpx.Client, content: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(content).hexdigest()
    assert client.put(f"/api/v1/blobs/{digest}", content=content).status_code == 201
    return {"sha256": digest, "size": len(content)}


def _model(client: httpx.Client, name: str = "m", content: bytes = b"weights") -> str:
    body = {
        "name": name,
        "kind": "file",
        "basename": "m.bin",
        "files": [{"path": "m.bin", **_put(client, content)}],
    }
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _deploy_body(client: httpx.Client, name: str, model_id: str, **config: Any) -> dict[str, Any]:
    snapshot = {"basename": "src", "files": [{"path": "score.py", **_put(client, SCORE)}]}
    response = client.post("/api/v1/snapshots", json=snapshot)
    assert response.status_code == 201, response.text
    return {
        "name": name,
        "models": [model_id],
        "inferenceConfig": {"entryScript": "score.py", "sourceDirectory": "src"},
        "snapshot": response.json()["id"],
        "deploymentConfig": {**FIXED, **config},
    }


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def _deleted(client: httpx.Client, name: str) -> None:
    assert client.delete(f"/api/v1/services/{name}").status_code == 202
    wait_for(
        lambda: client.get(f"/api/v1/services/{name}").status_code == 404,
        timeout_s=60,
        what=f"service {name} to be gone",
    )


def test_concurrent_deploys_of_one_name_give_one_service_and_409s(
    api: httpx.Client, backend_server: ServerProcess
) -> None:
    body = _deploy_body(api, "raced", _model(api))

    def deploy() -> httpx.Response:
        with _client(backend_server) as own:
            return own.post("/api/v1/services", json=body)

    responses = run_concurrently(deploy, THREADS)
    assert sorted(r.status_code for r in responses) == [202] + [409] * (THREADS - 1)
    for response in responses:
        if response.status_code == 409:
            assert _error(response, 409, "conflict") == "a service named 'raced' already exists"
    assert api.get("/api/v1/services/raced").json()["generation"] == 1


def test_concurrent_updates_each_get_their_own_generation(
    api: httpx.Client, backend_server: ServerProcess
) -> None:
    assert api.post("/api/v1/services", json=_deploy_body(api, "updated", _model(api))).is_success
    counter = iter(range(THREADS))

    def update() -> int:
        config = {**FIXED, "scoringTimeoutMs": 60_000 + next(counter)}
        with _client(backend_server) as own:
            response = own.patch("/api/v1/services/updated", json={"deploymentConfig": config})
        assert response.status_code == 202, response.text
        return int(response.json()["generation"])

    generations = run_concurrently(update, THREADS)
    assert sorted(generations) == list(range(2, THREADS + 2))
    assert api.get("/api/v1/services/updated").json()["generation"] == THREADS + 1


def test_identical_environments_registered_together_are_one_version(
    api: httpx.Client, backend_server: ServerProcess
) -> None:
    doc = {"name": "env", "python": {"condaDependencies": {"dependencies": [{"pip": ["numpy"]}]}}}

    def register() -> httpx.Response:
        with _client(backend_server) as own:
            return own.post("/api/v1/environments", json=doc)

    responses = run_concurrently(register, THREADS)
    assert sorted(r.status_code for r in responses) == [200] * (THREADS - 1) + [201]
    assert {r.json()["version"] for r in responses} == {"1"}
    assert [e["version"] for e in api.get("/api/v1/environments").json()["value"]] == ["1"]


def test_a_model_in_use_cannot_be_deleted(api: httpx.Client) -> None:
    used = _model(api, "m", b"one")
    assert _model(api, "m", b"two") == "m:2"
    for name in ("svc-a", "svc-b"):
        assert api.post("/api/v1/services", json=_deploy_body(api, name, used)).is_success
    message = _error(api.delete("/api/v1/models/m/versions/1"), 409, "conflict")
    assert message == "model m:1 is used by services svc-a, svc-b; it cannot be deleted"
    assert api.get("/api/v1/models/m/versions/1").status_code == 200
    assert api.delete("/api/v1/models/m/versions/2").status_code == 200  # not in use
    _deleted(api, "svc-a")
    message = _error(api.delete("/api/v1/models/m/versions/1"), 409, "conflict")
    assert message == "model m:1 is used by service svc-b; it cannot be deleted"
    _deleted(api, "svc-b")
    assert api.delete("/api/v1/models/m/versions/1").json()["id"] == used


def test_the_sdk_sees_a_model_in_use_as_a_conflict(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"weights")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_bytes(SCORE)
    with Workspace.from_config(server.home) as ws:
        model = Model.register(ws, tmp_path / "m.bin", "sdk-model")
        config = InferenceConfig(entry_script="score.py", source_directory=tmp_path / "src")
        deployment = AksWebservice.deploy_configuration(autoscale_enabled=False, num_replicas=1)
        Model.deploy(ws, "sdk-svc", [model], config, deployment)
        with pytest.raises(ConflictError, match="used by service sdk-svc") as caught:
            model.delete()
        assert caught.value.hint and "delete those services" in caught.value.hint
        Webservice(ws, "sdk-svc").delete()


def test_names_are_matched_whole_through_the_api(api: httpx.Client) -> None:
    content = {"path": "m.bin", **_put(api, b"w")}
    service = _deploy_body(api, "svc-ok", _model(api))
    for name in ("evil\n", "evil ", " evil", "evil\x00"):
        model = {"name": name, "kind": "file", "basename": "m.bin", "files": [content]}
        response = api.post("/api/v1/models", json=model)
        assert "invalid model name" in _error(response, 400, "invalid_input")
        env = {"name": name}
        _error(api.post("/api/v1/environments", json=env), 400, "invalid_configuration")
        bad_service = {**service, "name": f"svc{name}"}
        message = _error(api.post("/api/v1/services", json=bad_service), 400, "invalid_input")
        assert "provided service name is invalid" in message
        bad_model = {**service, "models": [f"m{name}:1"]}
        _error(api.post("/api/v1/services", json=bad_model), 400, "invalid_input")
    assert [m["name"] for m in api.get("/api/v1/models").json()["value"]] == ["m"]
    assert api.get("/api/v1/environments").json()["value"] == []
    assert api.get("/api/v1/services").json()["value"] == []


def test_a_model_version_out_of_range_is_a_400_everywhere(api: httpx.Client) -> None:
    body = _deploy_body(api, "svc", _model(api))
    for version in (10**30, 2**63, 0, -1):
        for method in ("GET", "DELETE"):
            response = api.request(method, f"/api/v1/models/m/versions/{version}")
            _error(response, 400, "invalid_input")
        patch = api.patch(f"/api/v1/models/m/versions/{version}", json={"description": "d"})
        _error(patch, 400, "invalid_input")
        _error(api.get(f"/api/v1/models/m/versions/{version}/files/m.bin"), 400, "invalid_input")
        _error(api.get(f"/api/v1/environments/e/versions/{version}"), 400, "invalid_input")
        deploy = api.post("/api/v1/services", json={**body, "models": [f"m:{version}"]})
        assert "between 1 and 9223372036854775807" in _error(deploy, 400, "invalid_input")
    assert api.get("/api/v1/models/m/versions/1").status_code == 200
    largest = api.get(f"/api/v1/models/m/versions/{2**63 - 1}")  # looked up, not refused
    assert _error(largest, 404, "not_found") == f"model m:{2**63 - 1} not found in the workspace"


def test_deploy_values_out_of_range_are_a_400_with_the_range(api: httpx.Client) -> None:
    cases = [
        ({"numReplicas": 100000}, "num_replicas must be between 1 and 1000. (got 100000)"),
        (
            {"scoringTimeoutMs": 10**22},
            "scoring_timeout_ms must be between 1 and 86400000. (got 10000000000000000000000)",
        ),
        (
            {"keys": {"primaryKey": "k" * 300}},
            "primary_key must be at most 255 characters long (got 300 characters).",
        ),
    ]
    model_id = _model(api)
    for config, expected in cases:
        body = _deploy_body(api, "svc", model_id, **config)
        message = _error(api.post("/api/v1/services", json=body), 400, "invalid_configuration")
        assert message.endswith(f"Invalid configuration, {expected}")
    assert api.get("/api/v1/services").json()["value"] == []
    assert api.post("/api/v1/services", json=_deploy_body(api, "svc", model_id)).is_success
    key = {"keyType": "Primary", "keyValue": "k" * 256}
    response = api.post("/api/v1/services/svc/regenerateKeys", json=key)
    message = _error(response, 400, "invalid_input")
    assert message == "the primary key must be 8 to 255 characters long (got 256 characters)"


def test_a_corrupted_blob_is_caught_by_the_sdk_download(
    server: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "model.bin").write_bytes(b"the real weights")
    with Workspace.from_config(server.home) as ws:
        model = Model.register(ws, tmp_path / "model.bin", "corrupted")
        blob = server.home / "artifacts" / "sha256" / model.files[0].sha256[:2]
        (blob / model.files[0].sha256).write_bytes(b"the fake weights")  # same size
        with pytest.raises(ModelportError, match=r"model\.bin arrived corrupted \(sha256 "):
            model.download(tmp_path / "out")
    assert not (tmp_path / "out" / "model.bin").exists()


def test_a_removed_artifacts_folder_does_not_stop_the_next_deploy(
    server: ServerProcess, tmp_path: Path
) -> None:
    shutil.rmtree(server.home / "artifacts")
    (tmp_path / "m.bin").write_bytes(b"weights")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text(
        textwrap.dedent(
            """
            def init():
                pass

            def run(raw):
                return {"echo": raw}
            """
        )
    )
    with Workspace.from_config(server.home) as ws:
        model = Model.register(ws, tmp_path / "m.bin", "after-removal")
        config = InferenceConfig(entry_script="score.py", source_directory=tmp_path / "src")
        deployment = AksWebservice.deploy_configuration(autoscale_enabled=False, num_replicas=1)
        service = Model.deploy(ws, "after-removal", [model], config, deployment)
        service.wait_for_deployment()
        assert service.state == "Healthy"
        assert service.run("hi") == {"echo": "hi"}


def test_deploys_to_a_read_only_postgres_say_so_and_work_once_it_is_writable(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.create_database("read_only_deploys")
    server = ServerProcess(tmp_path / "home", url)
    try:
        with _client(server) as client:
            body = _deploy_body(client, "svc", _model(client))
            postgres.set_read_only("read_only_deploys", True)
            message = _error(client.post("/api/v1/services", json=body), 503, "storage_unavailable")
            assert "the workspace database 'read_only_deploys'" in message
            assert "read-only transaction" in message
            with Workspace.from_config(server.home) as ws, pytest.raises(StorageUnavailableError):
                ws.client.call("POST", "/api/v1/services", json=body)  # the SDK's class
            postgres.set_read_only("read_only_deploys", False)
            response = client.post("/api/v1/services", json=body)
            assert response.status_code == 202, response.text
    finally:
        server.stop()
