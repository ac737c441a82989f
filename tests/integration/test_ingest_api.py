"""Model data from pods, in process: a generation's model-data credential appends rows
to its service's partitions, a cluster's routers' capture credential appends the
requests they capture; each renews itself and opens nothing else."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.compute.kubernetes import credential
from modelport.compute.kubernetes.credential import Scope
from modelport.store.computes import Attachment
from tests.integration.test_staging_api import TOKEN, Staged, _error, staged_workspace

PARTITION = "scaler/1/inputs/2026/12/02"
BATCH = {"partition": PARTITION, "header": ["a", "b"], "rows": [[1, 2.5], ["x,y", None]]}


@pytest.fixture
def staged(tmp_path: Path) -> Iterator[Staged]:
    with staged_workspace(tmp_path) as found:
        yield found


def _token(staged: Staged, scope: Scope | None = None, **kw: Any) -> str:
    key = credential.signing_key(staged.ws.home)
    return credential.mint(key, scope or staged.scope, audience=credential.MODEL_DATA, **kw).token


def _post(staged: Staged, path: str, token: str | None, body: object = BATCH) -> Any:
    headers = {"Authorization": f"Bearer {token}" if token is not None else ""}
    return staged.client.post(path, content=json.dumps(body).encode(), headers=headers)


def _file(staged: Staged, partition: str = PARTITION) -> Path:
    return staged.ws.home / "modeldata" / "default" / "iris" / partition / "data.csv"


def test_batches_append_to_the_partition_with_one_header(staged: Staged) -> None:
    token = _token(staged)
    for _ in range(2):
        response = _post(staged, "/api/v1/ingest/iris/2/modeldata", token)
        assert response.status_code == 204, response.text
    with _file(staged).open(newline="") as f:
        assert list(csv.reader(f)) == [["a", "b"], *[["1", "2.5"], ["x,y", ""]] * 2]


def test_an_hourly_partition_is_taken(staged: Staged) -> None:
    body = {**BATCH, "partition": "scaler/default/predictions/2026/12/02/23"}
    assert _post(staged, "/api/v1/ingest/iris/2/modeldata", _token(staged), body).status_code == 204
    assert _file(staged, "scaler/default/predictions/2026/12/02/23").is_file()


def test_a_partition_outside_the_layout_is_refused(staged: Staged) -> None:
    token = _token(staged)
    for partition, why in (
        ("../other/1/inputs/2026/12/02", "is no model name"),
        ("scaler/1/requests/2026/12/02", "designation 'requests' is not one of"),
        ("scaler/1/inputs/2026/13/02", "month must be in 1..12"),
        ("scaler/1/inputs/2026/12/2", "its date is not yyyy/mm/dd[/hh]"),
        ("scaler/x/inputs/2026/12/02", "is no model version"),
        ("scaler/1/inputs/2026/12", "is not <model>/<version>/<designation>"),
        ("/etc/1/inputs/2026/12/02", "is no model name"),
    ):
        body = {**BATCH, "partition": partition}
        message = _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", token, body), 400)
        assert why in message, (partition, message)
    assert not (staged.ws.home / "modeldata" / "default" / "other").exists()


def test_malformed_rows_are_refused_and_nothing_written(staged: Staged) -> None:
    token = _token(staged)
    for body in (
        {**BATCH, "rows": [[1, 2, 3]]},
        {**BATCH, "rows": [[[1], 2]]},
        {**BATCH, "header": []},
        {**BATCH, "rows": "1,2"},
        ["not", "an", "object"],
    ):
        _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", token, body), 400)
    response = staged.client.post(
        "/api/v1/ingest/iris/2/modeldata",
        content=b"{not json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert "is a JSON object" in _error(response, 400)
    assert not _file(staged).exists()


def test_an_oversized_batch_is_a_413(staged: Staged) -> None:
    body = {**BATCH, "rows": [["x" * (1 << 20), 1]] * 17}
    _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", _token(staged), body), 413)
    assert not _file(staged).exists()


def test_the_staging_credential_and_the_admin_token_append_nothing(staged: Staged) -> None:
    message = _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", staged.token()), 401)
    assert message.startswith("not a valid model-data credential")
    _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", TOKEN), 401)
    _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", None), 401)
    # and a model-data credential stages nothing, nor opens the management API
    assert _error(staged.get("/api/v1/staging/iris/2", _token(staged)), 401).startswith(
        "not a valid staging credential"
    )
    _error(staged.get("/api/v1/models", _token(staged)), 401)
    assert not _file(staged).exists()


def test_a_credential_appends_for_its_own_service_and_generation_only(staged: Staged) -> None:
    message = _error(_post(staged, "/api/v1/ingest/iris/1/modeldata", _token(staged)), 404)
    assert message.startswith("this credential collects for service iris generation 2")
    older = Scope("iris", 1, staged.scope.snapshot, staged.scope.models)
    # an older generation's pods (draining) still hand in what they hold
    assert (
        _post(staged, "/api/v1/ingest/iris/1/modeldata", _token(staged, older)).status_code == 204
    )


def test_an_expired_credential_is_refused_and_a_valid_one_renews(staged: Staged) -> None:
    expired = _token(staged, now=time.time() - 3600, ttl_s=600)
    message = _error(_post(staged, "/api/v1/ingest/iris/2/credential", expired, {}), 401)
    assert message.startswith("the model-data credential of service iris generation 2 expired")
    answer = _post(staged, "/api/v1/ingest/iris/2/credential", _token(staged, ttl_s=600), {})
    assert answer.status_code == 200, answer.text
    fresh = answer.json()
    assert fresh["expires_at"] - fresh["refresh_at"] > 600  # a full lifetime, not the old one
    key = credential.signing_key(staged.ws.home)
    grant = credential.verify(key, fresh["token"], audience=credential.MODEL_DATA)
    assert grant.scope == staged.scope
    assert _post(staged, "/api/v1/ingest/iris/2/modeldata", fresh["token"]).status_code == 204


def test_a_deleted_service_takes_no_more_rows(staged: Staged) -> None:
    token = _token(staged)
    staged.ws.services.remove("iris")
    message = _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", token), 404)
    assert message == "service iris not found"
    assert not _file(staged).exists()


CAPTURED = "iris/_router/default/requests/2026/12/02"
CAPTURE_BATCH = {"partition": CAPTURED, "header": ["request", "status"], "rows": [["{}", 200]]}


def _attach(staged: Staged, name: str = "myaks") -> None:
    made = Attachment("aks", "DevTest", "ml", "ctx", "https://k:6443", "v1.20.2", "kubeconfig")
    staged.ws.computes.attach(name, made)


def _capture_token(staged: Staged, target: str = "myaks", **kw: Any) -> str:
    key = credential.signing_key(staged.ws.home)
    scope = credential.routers_scope(target)
    return credential.mint(key, scope, audience=credential.CAPTURE, **kw).token


def test_cluster_routers_append_their_capture_for_an_existing_service(staged: Staged) -> None:
    _attach(staged)
    token = _capture_token(staged)
    path = "/api/v1/ingest/_routers/myaks/capture"
    assert _post(staged, path, token, CAPTURE_BATCH).status_code == 204
    with _file(staged, "_router/default/requests/2026/12/02").open(newline="") as f:
        assert list(csv.reader(f)) == [["request", "status"], ["{}", "200"]]
    gone = {**CAPTURE_BATCH, "partition": "gone/_router/default/requests/2026/12/02"}
    assert _error(_post(staged, path, token, gone), 404) == "service gone not found"
    for partition in (
        "iris/1/inputs/2026/12/02",  # a replica's partition: not the router's to write
        "iris/_router/default/inputs/2026/12/02",
        "../x/_router/default/requests/2026/12/02",
        "iris/_router/../requests/2026/12/02",
    ):
        body = {**CAPTURE_BATCH, "partition": partition}
        _error(_post(staged, path, token, body), 400)
    renewed = _post(staged, "/api/v1/ingest/_routers/myaks/credential", token, {})
    assert renewed.status_code == 200, renewed.text
    assert _post(staged, path, renewed.json()["token"], CAPTURE_BATCH).status_code == 204


def test_a_capture_credential_opens_its_own_target_only_and_nothing_else(staged: Staged) -> None:
    _attach(staged)
    token = _capture_token(staged)
    other = _error(
        _post(staged, "/api/v1/ingest/_routers/other/capture", token, CAPTURE_BATCH), 404
    )
    assert other.startswith("this credential captures for the routers of compute target myaks")
    wrong = _error(_post(staged, "/api/v1/ingest/iris/2/modeldata", token), 401)
    assert wrong.startswith("not a valid model-data credential")
    model_data = _token(staged)
    path = "/api/v1/ingest/_routers/myaks/capture"
    assert _error(_post(staged, path, model_data, CAPTURE_BATCH), 401).startswith(
        "not a valid capture credential"
    )
    unattached = _capture_token(staged, "detached")
    message = _error(
        _post(staged, "/api/v1/ingest/_routers/detached/capture", unattached, CAPTURE_BATCH), 404
    )
    assert message == "compute target detached not found"
    staged.ws.computes.detach("myaks")
    assert _error(_post(staged, path, token, CAPTURE_BATCH), 404).startswith("compute target")


def test_cluster_routers_request_log_lines_land_beside_the_local_ones(staged: Staged) -> None:
    _attach(staged)
    token = _capture_token(staged)
    path = "/api/v1/ingest/_routers/myaks/requests"
    lines = [{"service": "iris", "status": 200, "requestId": f"r{i}"} for i in range(3)]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = staged.client.post(path, content=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204, response.text
    kept = staged.ws.home / "logs" / "requests-myaks.jsonl"
    assert [json.loads(x) for x in kept.read_text().splitlines()] == lines
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    for bad in (b"not json\n", b'{"status": 200}\n', b"[1]\n", b"\xff\n"):
        answer = staged.client.post(path, content=bad, headers={"Authorization": f"Bearer {token}"})
        _error(answer, 400)
    assert len(kept.read_text().splitlines()) == 3  # nothing of a refused batch
    refused = staged.client.post(
        path, content=body, headers={"Authorization": f"Bearer {_token(staged)}"}
    )
    _error(refused, 401)  # a replica's model-data credential writes no request log
