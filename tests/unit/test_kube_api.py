"""KubeAPI against a mock transport (lightkube 1.0 speaks httpx2, so httpx2's MockTransport):
kubeconfigs taken or refused, the access reviews it sends, errors that name the server
and never the credentials."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection
from typing import Any

import httpx2
import pytest
import yaml

from modelport.compute.kubernetes import kubeconfig
from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.permissions import CONTROL_PLANE, Permission
from modelport.errors import ClusterUnreachableError, ComputeTargetError
from modelport.spec.compute import server_address

TOKEN = "s3cr3t-token-value"
SERVER = "https://k8s.example:6443"


def config_doc(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
        "users": [{"name": "u", "user": user or {"token": TOKEN}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "ml"}},
            {"name": "other", "context": {"cluster": "c", "user": "u"}},
        ],
    }


CONFIG = yaml.safe_dump(config_doc())
Handler = Callable[[httpx2.Request], httpx2.Response]


def cluster(denied: Collection[tuple[str, str, str]] = (), version: str = "v1.20.2") -> Handler:
    """A server that allows every (verb, resource[/sub], group) but ``denied``; it records
    the reviews it got in ``handler.reviews``."""
    reviews: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        if request.url.path == "/version":
            return httpx2.Response(200, json={"major": "1", "gitVersion": version})
        assert request.url.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        body = json.loads(request.content)
        attrs = body["spec"]["resourceAttributes"]
        reviews.append(attrs)
        resource = attrs["resource"] + (
            f"/{attrs['subresource']}" if "subresource" in attrs else ""
        )
        allowed = (attrs["verb"], resource, attrs.get("group", "")) not in denied
        return httpx2.Response(201, json={**body, "status": {"allowed": allowed}})

    handler.reviews = reviews  # type: ignore[attr-defined]
    return handler


def run(handler: Handler, call: Callable[[KubeAPI], Any], **kwargs: Any) -> Any:
    async def go() -> Any:
        async with KubeAPI(CONFIG, transport=httpx2.MockTransport(handler), **kwargs) as api:
            return await call(api)

    return asyncio.run(go())


def test_context_namespace_and_server_come_from_the_kubeconfig() -> None:
    api = KubeAPI(CONFIG)
    assert (api.context, api.namespace, api.server) == ("dev", "ml", SERVER)
    other = KubeAPI(CONFIG, context="other")
    assert (other.context, other.namespace) == ("other", "default")
    assert KubeAPI(CONFIG, "other", "serving").namespace == "serving"
    assert TOKEN not in repr(api)
    asyncio.run(api.aclose())
    asyncio.run(other.aclose())


def test_version_is_the_servers_git_version() -> None:
    assert run(cluster(), lambda api: api.version()) == "v1.20.2"


def test_one_access_review_per_verb_in_the_namespace_and_the_missing_ones_in_order() -> None:
    handler = cluster(denied={("patch", "deployments/scale", "apps"), ("create", "secrets", "")})
    missing = run(handler, lambda api: api.can_i(CONTROL_PLANE), namespace="serving")
    assert [(p.resource, verb) for p, verb in missing] == [
        ("deployments/scale", "patch"),
        ("secrets", "create"),
    ]
    reviews = handler.reviews  # type: ignore[attr-defined]
    assert len(reviews) == sum(len(p.verbs) for p in CONTROL_PLANE)
    assert {r["namespace"] for r in reviews} == {"serving"}
    scale = next(r for r in reviews if r.get("subresource") == "scale" and r["verb"] == "patch")
    assert scale == {
        "group": "apps",
        "resource": "deployments",
        "subresource": "scale",
        "verb": "patch",
        "namespace": "serving",
    }


def test_nothing_missing_is_an_empty_list() -> None:
    pods = Permission("", "pods", ("get", "list"), "readiness")
    assert run(cluster(), lambda api: api.can_i([pods])) == []


def test_an_unreachable_server_is_named() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ClusterUnreachableError) as caught:
        run(refuse, lambda api: api.version())
    assert caught.value.message == (
        f"cannot reach the Kubernetes API server {SERVER} (context 'dev'): "
        "[Errno 111] Connection refused"
    )


def test_a_server_that_does_not_answer_in_time() -> None:
    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    with pytest.raises(ClusterUnreachableError, match=r"did not answer within 2 s"):
        run(slow, lambda api: api.version(), timeout_s=2)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, r"refused the credentials \(401 Unauthorized\)"),
        (403, "the credentials may not create selfsubjectaccessreviews on the Kubernetes"),
        (500, "answered 500 to create selfsubjectaccessreviews: etcd is gone"),
    ],
)
def test_refusals_say_what_was_refused(status: int, expected: str) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status}
        return httpx2.Response(status, json={**body, "message": "etcd is gone"})

    pods = Permission("", "pods", ("get",), "readiness")
    with pytest.raises(ComputeTargetError, match=expected):
        run(answer, lambda api: api.can_i([pods]))


def test_a_server_that_is_not_kubernetes() -> None:
    with pytest.raises(ComputeTargetError, match="answered 404 to get /version"):
        run(lambda r: httpx2.Response(404, text="nope"), lambda api: api.version())
    with pytest.raises(ComputeTargetError, match="without a version; is it a Kubernetes"):
        run(lambda r: httpx2.Response(200, text="<html>"), lambda api: api.version())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"clusters: [\n  token: {TOKEN}\n  - x", r"not valid YAML \(line 3, column 6\)"),
        ("- a list", "not a YAML mapping"),
        (yaml.safe_dump({"contexts": []}), "has no 'clusters'"),
        (yaml.safe_dump({**config_doc(), "current-context": None}), "No current context"),
    ],
)
def test_kubeconfigs_that_cannot_be_read_say_why_without_their_values(
    text: str, expected: str
) -> None:
    with pytest.raises(ComputeTargetError, match=expected) as caught:
        kubeconfig.load(text)
    assert TOKEN not in caught.value.message


def test_a_context_that_is_not_there() -> None:
    with pytest.raises(ComputeTargetError, match="Context 'prod' not found"):
        KubeAPI(CONFIG, context="prod")


def test_credentials_from_a_command_or_from_files_are_refused() -> None:
    exec_user = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin"}
    }
    with pytest.raises(ComputeTargetError, match="by running 'kubelogin'; the server runs no"):
        kubeconfig.load(yaml.safe_dump(config_doc(**exec_user)))
    files = {"client-certificate": "u.crt", "client-key": "u.key"}
    with pytest.raises(ComputeTargetError, match=r"names files \(client-certificate, client-key\)"):
        kubeconfig.load(yaml.safe_dump(config_doc(**files)))
    with pytest.raises(ComputeTargetError, match=r"names files \(tokenFile\)"):
        kubeconfig.load(yaml.safe_dump(config_doc(tokenFile="/var/run/token")))


def test_certificate_data_that_does_not_load_is_refused_without_it() -> None:
    bad = config_doc(**{"client-certificate-data": "bm90IGEgY2VydA==", "client-key-data": "eA=="})
    with pytest.raises(ComputeTargetError, match="credentials of context 'dev' cannot be loaded"):
        KubeAPI(yaml.safe_dump(bad))


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://10.0.0.1:6443", "10.0.0.1:6443"),
        ("https://user:pw@k8s.example/prefix", "k8s.example"),
        ("https://[::1]:6443", "[::1]:6443"),
    ],
)
def test_answers_show_the_servers_address_only(url: str, address: str) -> None:
    assert server_address(url) == address
