"""The workspace's metrics port: what Prometheus scrapes, with which credential, and
the Grafana dashboard's expressions checked against a real scrape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport import AksEndpoint, InferenceConfig, Model, Workspace
from tests.conftest import ServerProcess, wait_for
from tests.e2e.clusters import attached
from tests.e2e.test_endpoints import script, version_config
from tests.e2e.test_model_data import COLLECTING
from tests.e2e.test_services import fixed, post, source
from tests.prom import samples, total, value

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "modelport.json"
REQUESTS = "modelport_router_requests_total"
# A metric name where PromQL selects one: before a `{` or a range `[`, or in label_values().
SELECTED = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*[{\[]")
LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Overrides the e2e server: this one serves metrics on a port of its own."""
    proc = ServerProcess(tmp_path / "home", args=("--metrics-port", "0"))
    try:
        yield proc
    finally:
        proc.stop()


def metrics_url(server: ServerProcess) -> str:
    return str(json.loads((server.home / "config.json").read_text())["metricsUrl"])


def metrics_token(server: ServerProcess) -> str:
    command = [sys.executable, "-m", "modelport", "metrics", "token"]
    done = subprocess.run(command, env=server.env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def scrape(url: str, token: str) -> str:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's expressions select; each selects one at least."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    names = set()
    for expr in exprs:
        found = set(SELECTED.findall(expr)) | set(LABEL_VALUES.findall(expr))
        assert found, f"no metric in {expr!r}"
        names |= found
    return names


def test_each_version_is_counted_and_the_dashboard_finds_its_metrics(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    plain = Model.deploy(ws, "plain", [model], source(tmp_path), fixed(1))
    endpoint = Model.deploy(ws, "shop", [model], script(tmp_path, "blue"), version_config("blue"))
    assert isinstance(endpoint, AksEndpoint)
    endpoint.create_version(
        "green",
        models=[model],
        inference_config=script(tmp_path, "green"),
        num_replicas=1,
        traffic_percentile=50,
    )
    plain.wait_for_deployment()
    endpoint.wait_for_deployment()
    key = plain.get_keys()[0]
    assert [post(plain, {"x": [1]}, key).status_code for _ in range(3)] == [200] * 3
    assert post(plain, {"x": [1]}).status_code == 401
    shop_key = endpoint.get_keys()[0]
    served = {"blue": 0, "green": 0}
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {shop_key}"}) as client:
        for version in ("blue", "green", "green"):
            pinned = {"azureml-model-deployment": version}
            answer = client.post(endpoint.scoring_uri, json={"x": [1]}, headers=pinned)
            assert answer.status_code == 200, answer.text
            served[answer.headers["azureml-model-deployment"]] += 1
    assert served == {"blue": 1, "green": 2}

    url, token = metrics_url(server), metrics_token(server)
    expected = {("plain", "", "2xx"): 3, ("plain", "", "4xx"): 1}
    expected |= {("shop", v, "2xx"): n for v, n in served.items()}

    def counted() -> str | None:
        text = scrape(url, token)
        got = {
            (ls["service"], ls["version"], ls["code"]): v
            for n, ls, v in samples(text)
            if n == REQUESTS and v
        }
        return text if got == expected else None

    text = wait_for(counted, timeout_s=10, what="the scrape to count every request")
    for service, version in (("plain", ""), ("shop", "blue"), ("shop", "green")):
        labels = {"service": service, "version": version}
        done = expected.get((service, version, "2xx"), 0) + expected.get(
            (service, version, "4xx"), 0
        )
        assert value(text, "modelport_router_replicas_ready", **labels) == 1
        assert value(text, "modelport_router_request_duration_seconds_count", **labels) == done
        assert value(text, "modelport_router_queue_wait_seconds_count", **labels) >= 1
        assert value(text, "modelport_replicas", state="Ready", **labels) == 1
        assert value(text, "modelport_replica_restarts", **labels) == 0
        assert value(text, "modelport_autoscale_decisions_total", direction="up", **labels) == 0
    assert value(text, "modelport_router_stats_up", target="local") == 1
    runs = "modelport_replica_run_duration_seconds_count"
    assert value(text, runs, service="plain", version="") == 3  # the 401 never reached it
    assert value(text, runs, service="shop", version="green") == 2
    init = "modelport_replica_init_duration_seconds"
    assert 0 < value(text, init, service="shop", version="blue") < 60
    present = {name for name, _, _ in samples(text)}
    present |= {name.removesuffix("_bucket") for name in present}
    missing = dashboard_metrics() - present
    assert not missing, f"the dashboard selects metrics no scrape has: {sorted(missing)}"


def test_only_the_metrics_or_admin_token_reads_and_labels_stay_bounded(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = Model.deploy(ws, "counted", [model], source(tmp_path), fixed(1))
    service.wait_for_deployment()
    url = metrics_url(server)
    health = httpx.get(f"{url}/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert httpx.get(f"{url}/metrics").status_code == 401
    for wrong in ("Bearer nope", "Basic abc", "Bearer", server.token):
        assert httpx.get(f"{url}/metrics", headers={"Authorization": wrong}).status_code == 401
    assert httpx.get(f"{url}/other").status_code == 404
    first = metrics_token(server)
    scrape(url, first)
    scrape(url, server.token)  # the admin token reads too
    second = metrics_token(server)  # a new token: the first one stops working
    headers = {"Authorization": f"Bearer {first}"}
    assert httpx.get(f"{url}/metrics", headers=headers).status_code == 401
    before = scrape(url, second)
    with httpx.Client(timeout=30) as client:
        for i in range(100):
            client.post(f"{server.router_url}/api/v1/service/nope-{i}/score", json={})
            client.get(f"{server.router_url}/some/path/{i}")
    assert post(service, {"x": [1]}, service.get_keys()[0]).status_code == 200

    def scored() -> str | None:
        text = scrape(url, second)
        return text if total(text, REQUESTS, code="2xx") == 1 else None

    after = wait_for(scored, timeout_s=10, what="the scored request in the scrape")
    services = {ls.get("service") for _, ls, _ in samples(after)} - {None}
    assert services == {"counted"}
    assert len(samples(after)) == len(samples(before))
    assert "nope" not in after and "some/path" not in after


def test_rows_the_replica_collected_are_counted(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    folder = tmp_path / "collecting"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(COLLECTING))
    inference = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "collecting", [model], inference, fixed(1, collect_model_data=True))
    service.wait_for_deployment()
    key = service.get_keys()[0]
    for i in range(5):
        assert post(service, {"data": [i, i + 1]}, key).status_code == 200
    url, token = metrics_url(server), metrics_token(server)
    rows = "modelport_data_collection_rows_total"

    def written() -> str | None:  # the replica writes them off the request path
        text = scrape(url, token)
        return text if value(text, rows, service="collecting", outcome="written") == 10 else None

    text = wait_for(written, timeout_s=15, what="5 rows of inputs and 5 of predictions")
    assert value(text, rows, service="collecting", outcome="dropped") == 0
    assert value(text, rows, service="collecting", outcome="failed") == 0
    assert value(text, "modelport_replica_run_duration_seconds_count", service="collecting") == 5


def test_captured_requests_are_counted(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = Model.deploy(
        ws, "capped", [model], source(tmp_path), fixed(1, capture_sample_rate=1.0)
    )
    service.wait_for_deployment()
    key = service.get_keys()[0]
    for i in range(3):
        assert post(service, {"x": [i]}, key).status_code == 200
    url, token = metrics_url(server), metrics_token(server)
    name = "modelport_router_capture_rows_total"
    wait_for(
        lambda: value(scrape(url, token), name, service="capped", outcome="taken") == 3,
        what="3 captured requests counted",
    )
    assert value(scrape(url, token), name, service="capped", outcome="dropped") == 0
    service.delete()


def test_a_clusters_replicas_are_counted_from_their_pods(
    server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path, kube_cluster: Any
) -> None:
    """The replica metrics of a service on a cluster come from its pods' counters (read
    through the API server), as the router metrics come from its router pods."""
    with attached(server, kube_cluster) as cluster:
        service = Model.deploy(
            ws, "pods-counted", [model], source(tmp_path), fixed(2), cluster.target
        )
        service.wait_for_deployment()
        key = service.get_keys()[0]
        for i in range(3):
            assert post(service, {"x": [i]}, key).status_code == 200
        url, token = metrics_url(server), metrics_token(server)
        runs = "modelport_replica_run_duration_seconds_count"

        def counted() -> str | None:
            text = scrape(url, token)
            return text if value(text, runs, service="pods-counted", version="") == 3 else None

        text = wait_for(counted, timeout_s=30, what="3 runs counted from the pods")
        labels = {"service": "pods-counted", "version": ""}
        assert 0 < value(text, "modelport_replica_init_duration_seconds", **labels) < 60
        assert value(text, "modelport_router_stats_up", target="myaks") == 1
        service.delete()
