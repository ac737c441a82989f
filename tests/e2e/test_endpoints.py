"""Endpoints end to end: versions behind one URL on a real server, router and replicas."""

from __future__ import annotations

import textwrap
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from modelport import AksEndpoint, InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from tests.conftest import ServerProcess, wait_for

SCORE = """
    import json, os, time

    VERSION = "{version}"
    FAIL_EVERY = {fail_every}
    SLEEP_S = {sleep_s}
    seen = 0

    def init():
        pass

    def run(raw):
        global seen
        seen += 1
        if SLEEP_S:
            time.sleep(SLEEP_S)
        if FAIL_EVERY and seen % FAIL_EVERY == 0:
            raise ValueError("failing on purpose")
        body = json.loads(raw)
        return {{"version": VERSION, "y": [x * {scale} for x in body.get("x", [])]}}
"""
HEADER = "azureml-model-deployment"


def script(
    tmp_path: Path,
    version: str,
    fail_every: int = 0,
    sleep_s: float = 0.0,
    scale: float = 10,
) -> InferenceConfig:
    folder = tmp_path / f"src-{version}"
    folder.mkdir(exist_ok=True)
    text = SCORE.format(version=version, fail_every=fail_every, sleep_s=sleep_s, scale=scale)
    (folder / "score.py").write_text(textwrap.dedent(text))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def version_config(name: str, traffic: int | None = None, **kw: object) -> object:
    return AksEndpoint.deploy_configuration(
        version_name=name, traffic_percentile=traffic, autoscale_enabled=False, num_replicas=1, **kw
    )


def endpoint_with(
    ws: Workspace, model: Model, tmp_path: Path, name: str = "shop"
) -> AksEndpoint:
    endpoint = Model.deploy(ws, name, [model], script(tmp_path, "blue"), version_config("blue"))
    assert isinstance(endpoint, AksEndpoint)
    endpoint.wait_for_deployment()
    return endpoint


def served(endpoint: AksEndpoint, count: int, **headers: str) -> Counter[str]:
    key = endpoint.get_keys()[0]
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            response = client.post(
                endpoint.scoring_uri,
                json={"x": [i]},
                headers={"Authorization": f"Bearer {key}", **headers},
            )
            assert response.status_code == 200, response.text
            assert response.json()["version"] == response.headers[HEADER]
            seen[response.headers[HEADER]] += 1
    return seen


def near(seen: Counter[str], wanted: dict[str, int]) -> bool:
    return all(abs(seen[name] - count) <= 1 for name, count in wanted.items())


def test_versions_share_one_url_by_v1s_rules_measured_through_the_router(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    endpoint = endpoint_with(ws, model, tmp_path)
    assert set(endpoint.versions) == {"blue"}
    blue = endpoint.versions["blue"]
    assert (blue.is_default, blue.version_type, blue.traffic_percentile) == (True, "Control", 0)
    endpoint.create_version(
        "green", models=[model], inference_config=script(tmp_path, "green"), num_replicas=1,
        traffic_percentile=20,
    )
    endpoint.create_version(
        "gold", models=[model], inference_config=script(tmp_path, "gold"), num_replicas=1,
        traffic_percentile=10,
    )
    endpoint.wait_for_deployment()
    assert endpoint.state == "Healthy"
    assert {n: v.share for n, v in endpoint.versions.items()} == {
        "blue": 70, "green": 20, "gold": 10
    }
    assert [v.version_type for v in endpoint.versions.values()] == [
        "Control", "Treatment", "Treatment"
    ]
    # The contract's first worked example, over 1,000 requests: exact to one request.
    assert near(served(endpoint, 1000), {"blue": 700, "green": 200, "gold": 100})
    # A pinned version takes every request, and the answer names it.
    assert served(endpoint, 20, **{HEADER: "gold"}) == Counter({"gold": 20})

    # The second: versions at 20 % and 40 %, the second the default, which gets 80 %.
    endpoint.delete_version("gold")
    endpoint.update_version("blue", traffic_percentile=20)
    endpoint.update_version("green", traffic_percentile=40, is_default=True)
    assert endpoint.versions["green"].is_default and not endpoint.versions["blue"].is_default
    assert {n: v.share for n, v in endpoint.versions.items()} == {"blue": 20, "green": 80}
    assert near(served(endpoint, 1000), {"blue": 200, "green": 800})
    wait_for(lambda: "shop.gold" not in _services(ws), what="the deleted version to go")

    # Every broken rule is a clear error naming the values; nothing changes.
    with pytest.raises(ConfigError, match=r"add up to 110%, over 100% \(blue 70%, green 40%\)"):
        endpoint.update_version("blue", traffic_percentile=70)
    with pytest.raises(ConfigError, match="'green' is the default: make another version"):
        endpoint.delete_version("green")
    with pytest.raises(ConfigError, match="cannot be negative or greater than 100"):
        endpoint.update_version("blue", traffic_percentile=101)
    with pytest.raises(NotFoundError, match="no version 'red'"):
        endpoint.update_version("red", traffic_percentile=1)
    with pytest.raises(ConflictError, match="version 'blue' already exists"):
        endpoint.create_version("blue", models=[model], inference_config=script(tmp_path, "b2"))
    for name in ("v-three", "v-four", "v-five", "v-six"):
        endpoint.create_version(
            name, models=[model], inference_config=script(tmp_path, name), num_replicas=1
        )
    with pytest.raises(ConfigError, match=r"at most 6 versions; it has 6 \(blue, green, v-three"):
        endpoint.create_version("v-seven", models=[model], inference_config=script(tmp_path, "7"))
    endpoint.update_deployment_state()
    assert {n: v.share for n, v in endpoint.versions.items()}["green"] == 80

    # Keys belong to the endpoint; a version is not reachable by its own name.
    response = httpx.post(endpoint.scoring_uri, json={}, timeout=10)
    assert response.status_code == 401
    hidden = endpoint.scoring_uri.replace("/shop/", "/shop.blue/")
    key = endpoint.get_keys()[0]
    assert httpx.post(hidden, json={}, headers={"Authorization": f"Bearer {key}"}).status_code == 404
    endpoint.regen_key("Primary")
    assert httpx.post(
        endpoint.scoring_uri, json={}, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).status_code == 401
    assert endpoint.run({"x": [1]})["y"] == [10]
    assert "Booting" in endpoint.get_logs(version="green") or endpoint.get_logs(version="green")

    # v1's names: Webservice finds the endpoint, and the SDK's views round-trip.
    again = Webservice(ws, "shop")
    assert isinstance(again, AksEndpoint)
    assert again.serialize()["versions"]["green"]["isDefault"] is True
    with pytest.raises(NotFoundError):
        Webservice(ws, "shop.blue")
    endpoint.delete()
    assert _services(ws) == set()
    with pytest.raises(NotFoundError):
        AksEndpoint(ws, "shop")


def _services(ws: Workspace) -> set[str]:
    """Every service the server runs, versions included (from its process listing)."""
    data = ws.client.call("GET", "/api/v1/endpoints")
    names = {v["service"] for e in data["value"] for v in e["versions"].values()}
    return names | {s["name"] for s in ws.client.call("GET", "/api/v1/services")["value"]}


def test_a_service_and_an_endpoint_cannot_share_a_name(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    endpoint_with(ws, model, tmp_path, "taken")
    plain = AksEndpoint.deploy_configuration(num_replicas=1, autoscale_enabled=False)
    from modelport import AksWebservice

    with pytest.raises(ConflictError, match="an endpoint named 'taken' already exists"):
        Model.deploy(
            ws, "taken", [model], script(tmp_path, "x"),
            AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False),
        )
    with pytest.raises(ConflictError, match="an endpoint named 'taken' already exists"):
        Model.deploy(ws, "taken", [model], script(tmp_path, "y"), plain)
    with pytest.raises(InvalidInputError, match="needs models and an inference_config"):
        AksEndpoint(ws, "taken").create_version("empty")
