"""The compute targets API in process, on each database backend, with the cluster behind
httpx2's MockTransport: attach checks it, answers never carry the kubeconfig, detach
refuses while a service names the target."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastapi.testclient import TestClient

from modelport.compute.kubernetes.attach import inspect_cluster
from modelport.control import api_services
from modelport.control.api_computes import cluster_inspector
from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace
from modelport.errors import InvalidInputError
from modelport.store.tables import ModelVersionRow, ServiceRow, utcnow
from tests.unit.test_kube_api import SERVER, TOKEN, cluster, config_doc

ADMIN = "t" * 43
OTHER_TOKEN = "other-cluster-token"


def kubeconfig() -> str:
    """Two clusters; attaching context ``dev`` must store nothing of ``prod``."""
    doc = config_doc()
    doc["clusters"].append({"name": "p", "cluster": {"server": "https://prod.example"}})
    doc["users"].append({"name": "pu", "user": {"token": OTHER_TOKEN}})
    doc["contexts"].append({"name": "prod", "context": {"cluster": "p", "user": "pu"}})
    return yaml.safe_dump(doc)


class Cluster:
    """The mock cluster the API talks to; tests swap its handler."""

    def __init__(self) -> None:
        self.handler = cluster()
        self.requests = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        return self.handler(request)


@pytest.fixture
def fake() -> Cluster:
    return Cluster()


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Iterator[ServerWorkspace]:
    workspace = ServerWorkspace.open(tmp_path / "home", database_url, ADMIN)
    yield workspace
    workspace.close()


@pytest.fixture
def client(ws: ServerWorkspace, fake: Cluster) -> Iterator[TestClient]:
    app = create_app(ws)
    transport = httpx2.MockTransport(fake)
    app.dependency_overrides[cluster_inspector] = lambda: functools.partial(
        inspect_cluster, transport=transport
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        yield c


def _attach(client: TestClient, name: str = "myaks", **extra: Any) -> Any:
    return client.put(f"/api/v1/computes/{name}", json={"kubeconfig": kubeconfig(), **extra})


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_attach_list_show_detach_and_no_answer_carries_the_kubeconfig(
    client: TestClient, ws: ServerWorkspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    attached = _attach(client, clusterPurpose="devtest")
    assert attached.status_code == 201, attached.text
    view = attached.json()
    assert {k: v for k, v in view.items() if not k.endswith("Time")} == {
        "name": "myaks",
        "computeType": "AKS",
        "isAttachedCompute": True,
        "provisioningState": "Succeeded",
        "provisioningErrors": None,
        "clusterPurpose": "DevTest",
        "namespace": "ml",
        "context": "dev",
        "server": "k8s.example:6443",
        "serverVersion": "v1.20.2",
    }
    answers = [attached, client.get("/api/v1/computes"), client.get("/api/v1/computes/myaks")]
    assert answers[1].json() == {"value": [view]} and answers[2].json() == view
    stored = ws.computes.get("myaks")
    assert stored.server == SERVER and TOKEN not in repr(stored)
    assert yaml.safe_load(stored.kubeconfig)["current-context"] == "dev"
    assert OTHER_TOKEN not in stored.kubeconfig and TOKEN in stored.kubeconfig
    detached = client.delete("/api/v1/computes/myaks")
    assert detached.status_code == 200 and detached.json() == view
    answers.append(detached)
    for answer in answers:
        assert TOKEN not in answer.text and "kubeconfig" not in answer.text
    assert TOKEN not in caplog.text
    message = _error(client.get("/api/v1/computes/myaks"), 404, "compute_target_not_found")
    assert message == (
        "ComputeTargetNotFound: Compute Target with name myaks not found in provided workspace"
    )


def test_a_namespace_and_context_given_at_attach_are_the_ones_checked(
    client: TestClient, fake: Cluster
) -> None:
    view = _attach(client, namespace="serving", context="dev").json()
    assert (view["namespace"], view["context"], view["clusterPurpose"]) == (
        "serving",
        "dev",
        "FastProd",
    )
    reviews = fake.handler.reviews  # type: ignore[attr-defined]
    assert reviews and {r["namespace"] for r in reviews} == {"serving"}


def test_every_missing_permission_is_named_and_nothing_is_attached(
    client: TestClient, fake: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.handler = cluster(
        denied={
            ("patch", "deployments/scale", "apps"),
            ("update", "deployments/scale", "apps"),
            ("list", "endpointslices", "discovery.k8s.io"),
        }
    )
    response = _attach(client)
    message = _error(response, 400, "compute_target_failed")
    assert message == (
        "the credentials may not: patch, update deployments/scale (apps); "
        "list endpointslices (discovery.k8s.io) in namespace 'ml'"
    )
    assert "Role" in response.json()["error"]["hint"]
    assert client.get("/api/v1/computes").json() == {"value": []}
    assert TOKEN not in caplog.text


def test_an_unreachable_server_is_named_and_nothing_is_attached(
    client: TestClient, fake: Cluster
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    fake.handler = refuse
    message = _error(_attach(client), 502, "cluster_unreachable")
    assert message.startswith(f"cannot reach the Kubernetes API server {SERVER}")
    assert client.get("/api/v1/computes").json() == {"value": []}


def test_a_kubeconfig_the_server_cannot_use_is_a_400_without_its_values(
    client: TestClient,
) -> None:
    bad = yaml.safe_dump(config_doc(tokenFile="/run/token"))
    message = _error(
        client.put("/api/v1/computes/myaks", json={"kubeconfig": bad}),
        400,
        "compute_target_failed",
    )
    assert "names files (tokenFile)" in message
    message = _error(_attach(client, context="nope"), 400, "compute_target_failed")
    assert "Context 'nope' not found" in message


def test_a_second_attach_of_a_name_is_a_conflict_before_asking_the_cluster(
    client: TestClient, fake: Cluster
) -> None:
    assert _attach(client).status_code == 201
    asked = fake.requests
    _error(_attach(client), 409, "conflict")
    assert fake.requests == asked


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("local", {}, "names the local compute target"),
        ("a", {}, "invalid compute target name 'a'"),
        ("has_underscore", {}, "invalid compute target name"),
        ("myaks", {"clusterPurpose": "Prod"}, "must be FastProd or DevTest"),
        ("myaks", {"namespace": "Upper"}, "invalid Kubernetes namespace 'Upper'"),
        ("myaks", {"computeType": "ACI"}, "only AKS can be attached"),
        ("myaks", {"kubeconfig": None}, "kubeconfig"),
    ],
)
def test_invalid_attach_requests_are_400s(
    client: TestClient, name: str, extra: dict[str, Any], expected: str
) -> None:
    assert expected in _error(_attach(client, name, **extra), 400, "invalid_input")


def test_detach_is_refused_while_a_service_names_the_target(
    client: TestClient, ws: ServerWorkspace
) -> None:
    assert _attach(client).status_code == 201
    with ws.db.transaction() as session:
        now = utcnow()
        session.add(
            ModelVersionRow(name="m", version=1, kind="file", basename="m", tags={}, properties={})
        )
        for name, spec in (
            ("svc-a", {"deploymentConfig": {"computeTargetName": "myaks"}}),
            ("svc-b", {"computeTarget": "myaks"}),
            ("svc-c", {"deploymentConfig": {"computeTargetName": "other"}}),
        ):
            session.add(
                ServiceRow(
                    name=name,
                    generation=1,
                    spec={"models": ["m:1"], **spec},
                    state="Healthy",
                    primary_key="k" * 8,
                    secondary_key="s" * 8,
                    created_time=now,
                    updated_time=now,
                )
            )
    message = _error(client.delete("/api/v1/computes/myaks"), 409, "conflict")
    assert message == "compute target myaks is used by services svc-a, svc-b; it cannot be detached"
    for name in ("svc-a", "svc-b"):
        ws.services.remove(name)
    assert client.delete("/api/v1/computes/myaks").status_code == 200
    _error(client.delete("/api/v1/computes/myaks"), 404, "compute_target_not_found")


def test_deploying_to_a_target_names_what_is_missing(
    client: TestClient, ws: ServerWorkspace
) -> None:
    assert api_services._cluster_name(ws, None) is None
    assert api_services._cluster_name(ws, "local") is None
    with pytest.raises(InvalidInputError) as caught:
        api_services._cluster_name(ws, "myaks")
    assert caught.value.message == (
        "compute target 'myaks' is not attached; attach it with modelport compute attach"
    )
    assert api_services._cluster_name(ws, "myaks", named_in_config=True) is None  # a warning
    assert _attach(client).status_code == 201
    for named_in_config in (False, True):
        assert api_services._cluster_name(ws, "myaks", named_in_config) == "myaks"
    local = {"deploymentConfig": {"computeType": "local"}}
    with pytest.raises(InvalidInputError) as caught:
        api_services._check_cluster_config("myaks", local)
    assert caught.value.message == (
        "a Local deployment configuration cannot be deployed to the Kubernetes compute "
        "target 'myaks'"
    )


def test_every_compute_call_needs_the_admin_token(client: TestClient) -> None:
    for method, path in (("GET", "/api/v1/computes"), ("PUT", "/api/v1/computes/x")):
        response = client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
