"""Services end to end: a real server, router and replicas on loopback, through the SDK."""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from modelport import AksWebservice, InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ConfigError, ConflictError, ModelportError, NotFoundError
from modelport.sdk.environment import Environment
from tests.conftest import ServerProcess, alive, wait_for
from tests.prom import value

SCORE = """
    import json, os, time
    from pathlib import Path
    from modelport import Model

    VERSION = "{version}"

    def init():
        global scale
        if os.environ.get("FAIL_INIT"):
            raise RuntimeError("init exploded on purpose")
        scale = json.load(open(Model.get_model_path("scaler") + "/w.json"))["scale"]

    def run(raw):
        body = json.loads(raw)
        if body.get("fail"):
            raise ValueError("run exploded on purpose")
        if body.get("hold"):
            Path(body["hold"]).write_text(str(os.getpid()))
            while Path(body["hold"]).exists():
                time.sleep(0.01)
        return {{"y": [x * scale for x in body.get("x", [])], "version": VERSION, "pid": os.getpid()}}
"""


def source(tmp_path: Path, version: str = "1", name: str = "src") -> InferenceConfig:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "score.py").write_text(textwrap.dedent(SCORE.format(version=version)))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def fixed(replicas: int, **kw: object) -> object:
    return AksWebservice.deploy_configuration(autoscale_enabled=False, num_replicas=replicas, **kw)


def post(service: Webservice, body: object, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(service.scoring_uri, json=body, headers=headers, timeout=30)


def test_deploy_score_logs_keys(ws: Workspace, model: Model, tmp_path: Path) -> None:
    service = Model.deploy(ws, "scaler-svc", [model], source(tmp_path), fixed(2))
    service.wait_for_deployment()
    assert service.state == "Healthy"
    assert len([r for r in service.serialize()["replicas"] if r["state"] == "Ready"]) == 2
    assert service.run({"x": [1, 2]})["y"] == [10, 20]
    primary, secondary = service.get_keys()
    assert post(service, {"x": [1]}, secondary).status_code == 200
    assert post(service, {"x": [1]}).status_code == 401
    assert post(service, {"x": [1]}, "not-a-key").status_code == 401
    pids = {post(service, {"x": []}, primary).json()["pid"] for _ in range(10)}
    assert len(pids) == 2  # both replicas serve
    logs = service.get_logs(num_lines=50)
    assert "calling init() of src/score.py" in logs and logs.count("=== replica-") == 2
    assert Webservice(ws, "scaler-svc").scoring_uri == service.scoring_uri
    assert [s.name for s in Webservice.list(ws)] == ["scaler-svc"]
    unknown = httpx.post(service.scoring_uri.replace("scaler-svc", "nope-svc"), json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    swagger = httpx.get(service.swagger_uri)
    assert swagger.status_code == 200 and swagger.json()["swagger"] == "2.0"


def test_body_over_the_limit_is_refused(ws: Workspace, model: Model, tmp_path: Path) -> None:
    service = Model.deploy(ws, "limit-svc", [model], source(tmp_path), fixed(1))
    service.wait_for_deployment()
    url = urlsplit(service.scoring_uri)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {101 * 2**20}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
        )
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413") and "payload_too_large" in answer


def test_keys_regenerate(ws: Workspace, model: Model, tmp_path: Path) -> None:
    service = Model.deploy(ws, "keys-svc", [model], source(tmp_path), fixed(1))
    service.wait_for_deployment()
    old_primary, secondary = service.get_keys()
    service.regen_key("Primary")
    new_primary, same_secondary = service.get_keys()
    assert new_primary != old_primary and same_secondary == secondary
    wait_for(
        lambda: post(service, {"x": [1]}, old_primary).status_code == 401, what="old key refused"
    )
    assert post(service, {"x": [1]}, new_primary).status_code == 200
    service.regen_key("secondary", set_key="my-chosen-secondary-key")
    wait_for(lambda: post(service, {}, "my-chosen-secondary-key").status_code == 200)
    with pytest.raises(ModelportError, match="invalid value provided for key: Tertiary"):
        service.regen_key("Tertiary")


def test_run_raising_is_502_and_the_service_stays_healthy(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "raise-svc", [model], source(tmp_path), fixed(1, auth_enabled=False))
    service.wait_for_deployment()
    failed = post(service, {"fail": True})
    assert failed.status_code == 502 and failed.headers["x-ms-run-function-failed"] == "True"
    assert "unexpected error occurred in scoring script" in failed.json()["message"]
    assert post(service, {"x": [3]}).json()["y"] == [30]
    service.update_deployment_state()
    assert service.state == "Healthy"
    assert "ValueError: run exploded on purpose" in service.get_logs()


def test_init_failure_makes_the_service_failed_quickly(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    env = Environment.from_document({"name": "fails", "environmentVariables": {"FAIL_INIT": "1"}})
    folder = tmp_path / "src"
    source(tmp_path)
    config = InferenceConfig(entry_script="score.py", source_directory=folder, environment=env)
    service = Model.deploy(ws, "init-fail", [model], config, fixed(1))
    with pytest.raises(ModelportError, match="current service state: Failed") as info:
        service.wait_for_deployment(timeout_sec=60)
    assert "RuntimeError: init exploded on purpose" in info.value.message
    assert service.state == "Failed"


def test_bad_entry_scripts_are_refused_at_deploy(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(data)\n    return data\n")
    with pytest.raises(ConfigError, match="syntax error at line 4"):
        InferenceConfig(entry_script="score.py", source_directory=folder)
    with pytest.raises(ConfigError, match="was not found"):
        InferenceConfig(entry_script="missing.py", source_directory=folder)
    with pytest.raises(ConfigError, match="only Python drivers"):
        InferenceConfig(entry_script="score.sh", source_directory=folder)
    # the server checks too, whatever client sent it
    from modelport.sdk.uploads import upload_snapshot

    snapshot = upload_snapshot(ws, "src", [("score.py", folder / "score.py")])
    body = {
        "name": "raw-svc",
        "models": [model.id],
        "snapshot": snapshot,
        "inferenceConfig": {"entryScript": "score.py", "sourceDirectory": "src"},
        "deploymentConfig": {"computeType": "aks"},
    }
    with pytest.raises(ConfigError, match="syntax error at line 4"):
        ws.client.call("POST", "/api/v1/services", json=body)
    with pytest.raises(ModelportError, match="provided service name is invalid"):
        Model.deploy(ws, "Bad_Name", [model], source(tmp_path, name="ok"), fixed(1))
    assert Webservice.list(ws) == []


def test_name_taken_needs_overwrite(ws: Workspace, model: Model, tmp_path: Path) -> None:
    config = source(tmp_path)
    Model.deploy(ws, "taken-svc", [model], config, fixed(1)).wait_for_deployment()
    with pytest.raises(ConflictError, match="already exists"):
        Model.deploy(ws, "taken-svc", [model], config, fixed(1))
    again = Model.deploy(
        ws, "taken-svc", [model], source(tmp_path, "2", "v2"), fixed(1), overwrite=True
    )
    again.wait_for_deployment()
    assert again.run({})["version"] == "2"


def test_killed_replica_mid_request(
    ws: Workspace, model: Model, tmp_path: Path, exchange: Path
) -> None:
    service = Model.deploy(ws, "kill-svc", [model], source(tmp_path), fixed(1, auth_enabled=False))
    service.wait_for_deployment()
    hold = exchange / "hold"
    result: dict[str, httpx.Response] = {}
    call = threading.Thread(target=lambda: result.update(r=post(service, {"hold": str(hold)})))
    call.start()
    wait_for(hold.exists, what="the request to reach run()")
    wait_for(lambda: hold.read_text(), what="run() to note its pid")
    os.kill(int(hold.read_text()), signal.SIGKILL)
    call.join(timeout=30)
    assert result["r"].status_code == 502, result["r"].text
    message = result["r"].json()["error"]["message"]  # how it ended, and where to look
    assert "killed by signal 9" in message and "modelport service logs -n kill-svc" in message
    hold.unlink()

    def serving_again() -> bool:
        service.update_deployment_state()
        replica = service.serialize()["replicas"][0]
        return replica["restarts"] == 1 and replica["state"] == "Ready"

    wait_for(serving_again, what="the replica to be restarted")
    assert post(service, {"x": [1]}).json()["y"] == [10]


def _replica_pids(service: Webservice) -> list[int]:
    """Replica processes of a service (only its router may score on their ports)."""
    service.update_deployment_state()
    return [int(r["pid"]) for r in service.serialize()["replicas"] if r["pid"]]


def test_update_under_steady_traffic_fails_no_request(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "update-svc", [model], source(tmp_path), fixed(2))
    service.wait_for_deployment()
    key = service.get_keys()[0]
    old_pids = set(_replica_pids(service))
    stop = threading.Event()
    statuses: list[int] = []
    versions: list[str] = []

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(
                    service.scoring_uri, json={"x": [1]}, headers={"Authorization": f"Bearer {key}"}
                )
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.append(r.json()["version"])

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for w in workers:
        w.start()
    wait_for(lambda: len(statuses) > 20, what="traffic to flow")
    service.update(inference_config=source(tmp_path, "2", "v2"))
    service.wait_for_deployment()
    wait_for(lambda: versions and versions[-1] == "2", what="the new version to answer")
    count = len(statuses)
    wait_for(lambda: len(statuses) > count + 20, what="more traffic after the update")
    stop.set()
    for w in workers:
        w.join(timeout=30)
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    assert "1" in versions and versions[-1] == "2"
    wait_for(lambda: not any(alive(p) for p in old_pids), what="the old replicas to exit")


def test_delete_while_requests_run(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess, exchange: Path
) -> None:
    service = Model.deploy(
        ws, "delete-svc", [model], source(tmp_path), fixed(2, auth_enabled=False)
    )
    service.wait_for_deployment()
    pids = set(_replica_pids(service))
    hold = exchange / "hold"
    result: dict[str, httpx.Response] = {}
    call = threading.Thread(target=lambda: result.update(r=post(service, {"hold": str(hold)})))
    call.start()
    wait_for(hold.exists, what="the request to reach run()")
    deleting = threading.Thread(target=service.delete)  # returns once the service is gone
    deleting.start()
    wait_for(lambda: post(service, {}).status_code != 200, what="the route to be removed")
    hold.unlink()  # the request in progress may now finish while its replica drains
    call.join(timeout=30)
    deleting.join(timeout=60)
    assert result["r"].status_code == 200
    wait_for(lambda: not _exists(ws, "delete-svc"), what="the service to be removed")
    wait_for(lambda: not any(alive(p) for p in pids), what="the replicas to exit")
    assert post(service, {}).status_code == 404
    assert not (server.home / "services" / "delete-svc").exists()


def _exists(ws: Workspace, name: str) -> bool:
    try:
        Webservice(ws, name)
    except NotFoundError:
        return False
    return True


def test_environment_build_failure_fails_the_service(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("modelport-no-such-package-anywhere==9.9\n")
    env = Environment.from_pip_requirements("broken-env", tmp_path / "requirements.txt")
    config = InferenceConfig(
        entry_script="score.py", source_directory=source(tmp_path).source_directory, environment=env
    )
    service = Model.deploy(ws, "env-fail", [model], config, fixed(1))
    with pytest.raises(ModelportError, match="current service state: Failed") as info:
        service.wait_for_deployment(timeout_sec=120)
    assert "modelport-no-such-package-anywhere" in info.value.message
    assert "not found in the package registry" in info.value.message


def test_served_json_is_json(ws: Workspace, model: Model, tmp_path: Path) -> None:
    service = Model.deploy(ws, "json-svc", [model], source(tmp_path), fixed(1, auth_enabled=False))
    service.wait_for_deployment()
    r = httpx.post(service.scoring_uri, content=json.dumps({"x": [1]}))
    assert r.headers["content-type"] == "application/json" and r.json()["y"] == [10]


MULTI = """
    import json, os
    from pathlib import Path
    from modelport import Model

    def init():
        pass

    def run(raw):
        return {
            "model_dir": os.environ["AZUREML_MODEL_DIR"],
            "a": Path(Model.get_model_path("model-a")).read_text(),
            "b2": Path(Model.get_model_path("model-b", version=2)).read_text(),
            "files": sorted(p.name for p in Path(os.environ["AML_APP_ROOT"], "app-src").iterdir()),
        }
"""


def test_local_service_with_several_models_and_ignored_files(ws: Workspace, tmp_path: Path) -> None:
    from modelport import LocalWebservice
    from tests.pgserver import free_port

    for name, texts in (("model-a", ["a1"]), ("model-b", ["b1", "b2"])):
        for text in texts:
            (tmp_path / "m.txt").write_text(text)
            Model.register(ws, tmp_path / "m.txt", name)
    src = tmp_path / "app-src"
    (src / "data").mkdir(parents=True)
    (src / "score.py").write_text(textwrap.dedent(MULTI))
    (src / "keep.txt").write_text("kept")
    (src / "secret.env").write_text("TOKEN=do-not-ship")
    (src / "data" / "big.bin").write_bytes(b"0" * 1000)
    (src / ".gitignore").write_text("keep.txt\n")  # ignored: .amlignore wins
    (src / ".amlignore").write_text("*.env\ndata/\n")
    models = [Model(ws, "model-a"), Model(ws, "model-b", version=2)]
    for _ in range(5):  # a port found free may be taken before the replica binds it
        port = free_port()
        try:
            service = Model.deploy(
                ws,
                "local-svc",
                models,
                InferenceConfig(entry_script="score.py", source_directory=src),
                LocalWebservice.deploy_configuration(port=port),
            )
            break
        except ConflictError:
            continue
    service.wait_for_deployment()
    assert service.compute_type == "Local" and not service.auth_enabled
    assert service.scoring_uri == f"http://localhost:{port}/score"  # as v1's LocalWebservice
    answer = service.run({})
    assert answer["model_dir"].endswith("/azureml-models")
    assert (answer["a"], answer["b2"]) == ("a1", "b2")
    assert answer["files"] == [".amlignore", ".gitignore", "keep.txt", "score.py"]
    direct = httpx.post(f"http://127.0.0.1:{port}/score", content=b"{}")
    assert direct.status_code == 200 and direct.json() == answer


def test_a_replica_busy_with_a_long_run_keeps_passing_its_probes(
    ws: Workspace, model: Model, tmp_path: Path, exchange: Path
) -> None:
    quick_probes = fixed(
        1,
        auth_enabled=False,
        initial_delay_seconds=1,
        period_seconds=1,
        timeout_seconds=1,
        failure_threshold=2,
        scoring_timeout_ms=120000,
    )
    service = Model.deploy(ws, "busy-svc", [model], source(tmp_path), quick_probes)
    service.wait_for_deployment()
    hold = exchange / "hold"
    result: dict[str, httpx.Response] = {}
    call = threading.Thread(target=lambda: result.update(r=post(service, {"hold": str(hold)})))
    call.start()
    wait_for(hold.exists, what="run() to start holding the replica")

    def replica() -> dict[str, int]:
        service.update_deployment_state()
        return dict(service.serialize()["replicas"][0])

    passed = replica()["probesPassed"]
    # more than failure_threshold probe periods go by while run() holds the loop
    wait_for(lambda: replica()["probesPassed"] >= passed + 3, timeout_s=30, what="three probes")
    assert replica()["restarts"] == 0 and replica()["state"] == "Ready"
    hold.unlink()
    call.join(timeout=30)
    assert result["r"].status_code == 200


def test_router_metrics_are_on_the_admin_port(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = Model.deploy(ws, "metrics-svc", [model], source(tmp_path), fixed(1))
    service.wait_for_deployment()
    key = service.get_keys()[0]
    assert post(service, {"x": [1]}, key).status_code == 200
    assert post(service, {"x": [1]}).status_code == 401
    admin = json.loads((server.home / "config.json").read_text())["routerAdminUrl"]
    assert httpx.get(f"{admin}/metrics").status_code == 401
    text = httpx.get(f"{admin}/metrics", headers={"Authorization": f"Bearer {server.token}"}).text
    assert value(text, "modelport_router_requests_total", service="metrics-svc", code="2xx") == 1
    assert value(text, "modelport_router_requests_total", service="metrics-svc", code="4xx") == 1
    assert value(text, "modelport_router_replicas_ready", service="metrics-svc") == 1
    assert urlsplit(admin).hostname == "127.0.0.1"  # never on the scoring address


def test_a_failed_update_keeps_the_previous_replicas_serving(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = Model.deploy(
        ws, "steady-svc", [model], source(tmp_path), fixed(1, auth_enabled=False)
    )
    service.wait_for_deployment()
    weights = model.files[0].sha256
    for blob in (server.home / "artifacts" / "sha256").glob(f"*/{weights}"):
        blob.unlink()  # the store lost the model's file: the next roll-out cannot lay it out
    service.update(num_replicas=2, autoscale_enabled=False)
    with pytest.raises(ModelportError, match="current service state: Failed") as info:
        service.wait_for_deployment(timeout_sec=60)
    assert "FileNotFoundError" in info.value.message
    assert post(service, {"x": [4]}).json()["y"] == [40]  # generation 1 still answers
