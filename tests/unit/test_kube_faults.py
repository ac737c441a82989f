"""What a real API server will not do on demand, through a mock transport: load shedding
(429) and passing faults (5xx) retried, conflicts named, an expired watch (410 Gone) and a
dropped watch stream raised so the caller lists again, and a pod watch that survives both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.settings import ClusterSettings
from modelport.errors import ClusterUnreachableError, ComputeTargetError, WatchExpiredError

pytestmark = pytest.mark.anyio
SERVER = "https://k8s.example:6443"
CONFIG = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
    }
)
Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _api(handler: Handler) -> KubeAPI:
    return KubeAPI(CONFIG, transport=httpx2.MockTransport(handler))


def _configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


async def test_load_shedding_and_passing_faults_are_tried_again() -> None:
    answers = [
        httpx2.Response(429, headers={"retry-after": "0"}, json={"message": "slow down"}),
        httpx2.Response(503, json={"message": "etcd leader changed"}),
        httpx2.Response(200, json={**_configmap("svc"), "metadata": {"name": "svc", "uid": "u1"}}),
    ]
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.method)
        return answers.pop(0)

    async with _api(handler) as api:
        applied = await api.apply(_configmap("svc"))
    assert applied["metadata"]["uid"] == "u1" and seen == ["PATCH"] * 3


async def test_a_fault_that_lasts_is_an_error_naming_the_server_and_the_call() -> None:
    calls = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        return httpx2.Response(500, json={"message": "internal error"})

    async with _api(handler) as api:
        with pytest.raises(ComputeTargetError, match=r"k8s.example.*500 to get ConfigMap svc"):
            await api.get("ConfigMap", "svc")
    assert calls == 5


async def test_a_conflict_is_not_retried_and_says_what_the_server_said() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(409, json={"message": "Apply failed with 1 conflict"})

    async with _api(handler) as api:
        with pytest.raises(ComputeTargetError, match="409 to apply ConfigMap svc: Apply failed"):
            await api.apply(_configmap("svc"))


def _stream(events: list[dict[str, Any]], then: Exception | None = None) -> httpx2.Response:
    async def body() -> AsyncIterator[bytes]:
        for event in events:
            yield (json.dumps(event) + "\n").encode()
        if then is not None:
            raise then

    return httpx2.Response(200, content=body())


async def test_an_expired_watch_raises_so_the_caller_lists_again() -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "p1"}}}
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params["resourceVersion"] == "41"
        return _stream([added, gone])

    seen = []
    async with _api(handler) as api:
        with pytest.raises(WatchExpiredError, match="410 Gone"):
            async for kind, obj in api.watch("Pod", {"a": "b"}, "41"):
                seen.append((kind, obj["metadata"]["name"]))
    assert seen == [("ADDED", "p1")]


async def test_a_dropped_watch_stream_raises_so_the_caller_lists_again() -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "p1"}}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        return _stream([added], then=httpx2.RemoteProtocolError("peer closed connection"))

    async with _api(handler) as api:
        with pytest.raises(ClusterUnreachableError, match=r"watch stream .* broke"):
            async for _ in api.watch("Pod", {}, "1"):
                pass


async def test_a_pod_watch_lists_again_after_a_410_and_misses_no_deletion() -> None:
    """A generation follows its pods level-triggered: after a 410 it lists again, so a pod
    deleted while the watch was down is gone from its view too."""
    from modelport.compute.kubernetes.generation import KubeGeneration

    pod = {"metadata": {"name": "svc-1-a", "creationTimestamp": "2026-12-01T00:00:00Z"}}
    lists = [
        {
            "metadata": {"resourceVersion": "10"},
            "items": [pod, {**pod, "metadata": {**pod["metadata"], "name": "svc-1-b"}}],
        },
        {"metadata": {"resourceVersion": "20"}, "items": [pod]},
    ]
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
    listed = asyncio.Event()
    served = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal served
        if request.url.params.get("watch") == "true":
            return _stream([gone] if served == 1 else [])
        served += 1
        if served == 2:
            listed.set()
        return httpx2.Response(200, json=lists[min(served, 2) - 1])

    class Target:
        def __init__(self, api: KubeAPI) -> None:
            self.api = api

    release: Any = type(
        "R", (), {"service": "svc", "generation": 1, "plan": type("P", (), {"replicas": 1})()}
    )()
    async with _api(handler) as api:
        made = KubeGeneration(Target(api), release, lambda: None)  # type: ignore[arg-type]
        made.follow()
        await asyncio.wait_for(listed.wait(), 5)
        assert made.pod_names() == ["svc-1-a"]
        await made.let_go()


async def test_staging_credentials_are_renewed_before_they_expire(tmp_path: Path) -> None:
    """A pod started late stages its files again: the generation's Secret gets a fresh
    credential once the old one is past its refresh time, and not before (and a fresh
    model-data credential, for a service that collects)."""
    from modelport.compute.kubernetes import credential
    from modelport.compute.kubernetes.routers import Routers
    from modelport.compute.kubernetes.target import KubernetesTarget, _scope

    applied: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(200, json={"metadata": {"name": "svc", "uid": "u1"}})
        applied.append(json.loads(request.content))
        return httpx2.Response(200, json=applied[-1])

    spec = {"snapshot": "snap1", "models": ["m:1"]}
    async with _api(handler) as api:
        target = KubernetesTarget.__new__(KubernetesTarget)
        target.api, target.home, target.name = api, tmp_path, "myaks"
        target.cluster = ClusterSettings(namespace="ml", workspace="w", stage_url="http://cp")
        target.routers = Routers("myaks", api, target.cluster)  # not installed: a GET finds no key
        collecting = type("P", (), {"collect_model_data": True})()
        release: Any = type("R", (), {"service": "svc", "generation": 2, "plan": collecting})()
        scope = _scope("svc", 2, spec)
        minted = credential.mint(credential.signing_key(tmp_path), scope, now=1000.0, ttl_s=100)
        target._staged = {"svc-2": (release, scope, minted)}
        await target.renew_due(now=1040.0)  # before refresh_at (1050): nothing to do
        assert applied == []
        await target.renew_due(now=1060.0)
    (secret,) = applied
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "svc-2-stage"
    key = credential.signing_key(tmp_path)
    grant = credential.verify(key, secret["stringData"]["token"])
    assert grant.scope == scope and grant.expires_at > 1060
    data = secret["stringData"]["modeldata"]
    assert credential.verify(key, data, audience=credential.MODEL_DATA).scope == scope
