"""Endpoints end to end: versions behind one URL on a real server, router and replicas."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import httpx
import pytest

from modelport import AksEndpoint, InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_data_plane import Load

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
    says: str | None = None,
) -> InferenceConfig:
    """A version's script: it answers ``says`` (its name) and x scaled, failing every
    ``fail_every``-th request and taking ``sleep_s`` for each."""
    folder = tmp_path / f"src-{version}"
    folder.mkdir(exist_ok=True)
    text = SCORE.format(
        version=says or version, fail_every=fail_every, sleep_s=sleep_s, scale=scale
    )
    (folder / "score.py").write_text(textwrap.dedent(text))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def version_config(
    name: str, traffic: int | None = None, replicas: int = 1, **kw: object
) -> object:
    return AksEndpoint.deploy_configuration(
        version_name=name,
        traffic_percentile=traffic,
        autoscale_enabled=False,
        num_replicas=replicas,
        **kw,
    )


def endpoint_with(ws: Workspace, model: Model, tmp_path: Path, name: str = "shop") -> AksEndpoint:
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
        "green",
        models=[model],
        inference_config=script(tmp_path, "green"),
        num_replicas=1,
        traffic_percentile=20,
    )
    endpoint.create_version(
        "gold",
        models=[model],
        inference_config=script(tmp_path, "gold"),
        num_replicas=1,
        traffic_percentile=10,
    )
    endpoint.wait_for_deployment()
    assert endpoint.state == "Healthy"
    assert {n: v.share for n, v in endpoint.versions.items()} == {
        "blue": 70,
        "green": 20,
        "gold": 10,
    }
    assert [v.version_type for v in endpoint.versions.values()] == [
        "Control",
        "Treatment",
        "Treatment",
    ]
    # The contract's first worked example, over 1,000 requests: exact to one request.
    assert near(served(endpoint, 1000), {"blue": 700, "green": 200, "gold": 100})
    # A pinned version takes every request, and the answer names it.
    assert served(endpoint, 20, **{HEADER: "gold"}) == Counter({"gold": 20})
    # The router's request log names the endpoint and the version that answered.

    def last_twenty() -> list[tuple[str, str]] | None:
        pairs = [(d["service"], d["version"]) for d in endpoint.get_requests(tail=20)]
        return pairs if pairs == [("shop", "gold")] * 20 else None

    wait_for(last_twenty, what="the pinned requests in the request log")

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
    # Auth and keys are the endpoint's: a version's file setting them otherwise is refused.
    open_door = version_config("v-three", auth_enabled=False)
    with pytest.raises(ConfigError, match="authEnabled: False for one version, but endpoint"):
        endpoint.deploy_version(None, None, None, open_door)
    own_keys = version_config("v-three", primary_key="p" * 12)
    with pytest.raises(ConfigError, match="keys: an endpoint's versions share the endpoint's"):
        endpoint.deploy_version(None, None, None, own_keys)
    endpoint.update(enable_app_insights=True)
    assert any(
        w.startswith("appInsightsEnabled: an endpoint's own setting sends nothing")
        for w in endpoint.warnings
    )

    # Keys belong to the endpoint; a version is not reachable by its own name.
    response = httpx.post(endpoint.scoring_uri, json={}, timeout=10)
    assert response.status_code == 401
    hidden = endpoint.scoring_uri.replace("/shop/", "/shop.blue/")
    key = endpoint.get_keys()[0]
    assert (
        httpx.post(hidden, json={}, headers={"Authorization": f"Bearer {key}"}).status_code == 404
    )
    endpoint.regen_key("Primary")
    assert (
        httpx.post(
            endpoint.scoring_uri, json={}, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).status_code
        == 401
    )
    assert endpoint.run({"x": [1]})["y"] == [10]
    with pytest.raises(NotFoundError, match="no version 'red'"):
        endpoint.get_logs(version="red")

    # v1's names: Webservice finds the endpoint, and the SDK's views round-trip.
    again = Webservice(ws, "shop")
    assert isinstance(again, AksEndpoint)
    listed = Webservice.list(ws, compute_type="AKSENDPOINT")
    assert [(type(e).__name__, e.name) for e in listed] == [("AksEndpoint", "shop")]
    assert Webservice.list(ws, model_name="scaler")[0].models == ["scaler:1"]
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
            ws,
            "taken",
            [model],
            script(tmp_path, "x"),
            AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False),
        )
    with pytest.raises(ConflictError, match="an endpoint named 'taken' already exists"):
        Model.deploy(ws, "taken", [model], script(tmp_path, "y"), plain)
    with pytest.raises(InvalidInputError, match="needs models and an inference_config"):
        AksEndpoint(ws, "taken").create_version("empty")
    with pytest.raises(InvalidInputError, match="endpoints run on this machine's compute target"):
        Model.deploy(ws, "elsewhere", [model], script(tmp_path, "z"), plain, "myaks")


def test_percentages_change_under_load_with_no_failed_request(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Changing percentages and the default, adding a version and deleting one, while
    clients score: every request answered 200, and each change reaches the router."""
    endpoint = endpoint_with(ws, model, tmp_path, "busy")
    endpoint.create_version(
        "green", models=[model], inference_config=script(tmp_path, "green"), num_replicas=1
    )
    endpoint.wait_for_deployment()
    load = Load(endpoint.scoring_uri, endpoint.get_keys()[0])
    try:
        load.wait_more(20, "traffic to flow")
        for percent in (30, 60, 90):
            endpoint.update_version("green", traffic_percentile=percent)
            load.wait_more(20, f"traffic at {percent}%")
        wait_for(lambda: load.answered[-20:].count("green") >= 14, what="green to take 90%")
        endpoint.create_version(
            "gold",
            models=[model],
            inference_config=script(tmp_path, "gold"),
            num_replicas=1,
            traffic_percentile=10,
        )
        load.wait_more(40, "traffic while gold starts")
        wait_for(lambda: "gold" in load.answered[-40:], what="gold to take traffic once up")
        endpoint.update_version("green", traffic_percentile=0, is_default=True)
        load.wait_more(20, "traffic after green became the default")
        endpoint.delete_version("gold")
        load.wait_more(40, "traffic after gold was deleted")
        results = load.stop()
    finally:
        load.stop()
    assert results and set(results) == {200}, Counter(map(str, results))
    assert "gold" not in load.answered[-20:]
    assert set(load.answered[-20:]) == {"green"}  # the default takes what is left: 100 %


def test_a_restarted_control_plane_keeps_versions_split_and_keys(
    model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    with Workspace.from_config(server.home) as ws:
        endpoint = endpoint_with(ws, model, tmp_path, "kept")
        endpoint.create_version(
            "green",
            models=[model],
            inference_config=script(tmp_path, "green"),
            num_replicas=1,
            traffic_percentile=25,
        )
        endpoint.update(sticky_header="x-user")
        endpoint.wait_for_deployment()
        keys = endpoint.get_keys()
        before = endpoint.serialize()
    server.stop()
    restarted = ServerProcess(server.home)
    try:
        with Workspace.from_config(server.home) as ws:
            again = AksEndpoint(ws, "kept")
            again.wait_for_deployment()
            assert again.get_keys() == keys
            assert again.serialize()["sticky"] == {"header": "x-user"}
            for name in ("blue", "green"):
                old, new = before["versions"][name], again.serialize()["versions"][name]
                for field in ("trafficPercentile", "isDefault", "versionType", "share"):
                    assert new[field] == old[field], (name, field)
            assert near(served(again, 400), {"blue": 300, "green": 100})
            for user in ("ann", "bob", "cyd", "dee"):  # a key stays on its version
                assert len(served(again, 10, **{"x-user": user})) == 1
    finally:
        restarted.stop()


def test_a_shadow_is_compared_and_never_reaches_clients(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Two shadows, one failing every request and slow, one answering the same: clients
    get the live answer at once; the comparison counts agreement and errors."""
    endpoint = endpoint_with(ws, model, tmp_path, "mirror")
    endpoint.create_version(
        "broken",
        models=[model],
        inference_config=script(tmp_path, "broken", fail_every=1, sleep_s=0.5),
        num_replicas=1,
        shadow_percentile=50,
    )
    endpoint.create_version(
        "twin",
        models=[model],
        inference_config=script(tmp_path, "twin", scale=10.0000001, says="blue"),
        num_replicas=1,
        shadow_percentile=100,
    )
    endpoint.wait_for_deployment()
    assert {n: v.share for n, v in endpoint.versions.items()} == {
        "blue": 100,
        "broken": 0,
        "twin": 0,
    }
    seen = served(endpoint, 40)
    assert seen == Counter({"blue": 40})
    with pytest.raises(ConfigError, match="cannot also be a shadow"):
        endpoint.update_version("twin", traffic_percentile=10)

    def stats() -> dict[str, object]:
        return endpoint.get_stats(600)["versions"]

    wait_for(
        lambda: (
            stats()["broken"].get("shadow", {}).get("shadowErrors") == 20
            and stats()["twin"].get("shadow", {}).get("compared") == 40
        ),
        what="the shadows' answers to be compared",
    )
    versions = stats()
    assert versions["broken"]["shadow"]["agreement"] is None
    assert versions["broken"]["shadow"]["latencyDeltaMs"] is None
    twin = versions["twin"]["shadow"]
    assert twin["mirrored"] == 40 and twin["agreed"] == 40 and twin["agreement"] == 1.0
    assert versions["blue"]["byClass"]["2xx"] == 40


def test_promotion_completes_on_a_good_treatment_and_rolls_back_a_bad_one(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Steps of 25, 50 and 100 %, two seconds each, under steady traffic: a treatment as
    good as the control becomes default and control; one failing 20 % of requests, and
    one three times slower, are rolled back with the broken bound and its figures."""
    config = version_config("blue", replicas=2)
    paced = script(tmp_path, "blue", sleep_s=0.02)
    endpoint = Model.deploy(ws, "rollout", [model], paced, config)
    assert isinstance(endpoint, AksEndpoint)

    def add(name: str, **kw: object) -> None:
        endpoint.create_version(
            name, models=[model], inference_config=script(tmp_path, name, **kw), num_replicas=2
        )
        endpoint.wait_for_deployment()

    add("green", sleep_s=0.02)
    load = Load(endpoint.scoring_uri, endpoint.get_keys()[0], clients=2)
    try:
        load.wait_more(20, "traffic to flow")
        gate = {"steps": [25, 50, 100], "step_seconds": 2.0, "min_requests": 10}
        gate["max_p99_ratio"] = 2.0  # the sluggish one is 4x; a shared 2-core machine is noisy
        with pytest.raises(InvalidInputError, match="'blue' is the control"):
            endpoint.promote("blue", **gate)
        result = endpoint.promote("green", **gate, wait=True, timeout_sec=60)
        assert result["state"] == "Promoted", result["reason"]
        endpoint.update_deployment_state()
        green = endpoint.versions["green"]
        assert (green.is_default, green.version_type, green.share) == (True, "Control", 100)
        kinds = [e["kind"] for e in endpoint.get_events()]
        assert kinds == ["step", "step", "step", "promoted"]
        assert set(load.results) == {200}

        add("flaky", sleep_s=0.02, fail_every=5)
        result = endpoint.promote("flaky", **gate, wait=True, timeout_sec=60)
        assert result["state"] == "RolledBack" and "error rate" in result["reason"], result
        add("sluggish", sleep_s=0.08)
        result = endpoint.promote("sluggish", **gate, wait=True, timeout_sec=60)
        assert result["state"] == "RolledBack", result
        assert re.match(r"p\d+ latency [\d.]+ ms against the control's", result["reason"])
    finally:
        load.stop()
    endpoint.update_deployment_state()
    assert {n: v.share for n, v in endpoint.versions.items()} == {
        "blue": 0,
        "green": 100,
        "flaky": 0,
        "sluggish": 0,
    }
    rolled = [e for e in endpoint.get_events() if e["kind"] == "rolledBack"]
    assert len(rolled) == 2
    assert rolled[0]["data"]["figures"]["treatment"]["errorRate"] > 0.1
    assert "went back to the control 'green'" in rolled[1]["message"]
