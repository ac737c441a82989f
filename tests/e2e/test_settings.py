"""v1 settings on the local target: honoured, refused, or warned about; never ignored."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from modelport import (
    AciWebservice,
    AksEndpoint,
    AksWebservice,
    InferenceConfig,
    LocalWebservice,
    Model,
    Webservice,
    Workspace,
)
from modelport.compute.local.limits import GB
from modelport.errors import ConfigError, ConflictError, EnvironmentBuildError, ModelportError
from modelport.sdk.uploads import source_files, upload_snapshot
from tests.conftest import ServerProcess, alive, wait_for
from tests.e2e.test_services import fixed, post, source


def test_both_auth_modes_at_once_are_refused_with_v1s_message(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    both = r"auth_enabled and token_auth_enabled cannot both be true\."
    with pytest.raises(ConfigError, match=both):
        AksWebservice.deploy_configuration(token_auth_enabled=True, auth_enabled=True)
    with pytest.raises(ConfigError, match=both):
        AksEndpoint.deploy_configuration(
            version_name="blue", token_auth_enabled=True, auth_enabled=True
        )
    assert Webservice.list(ws) == []


def test_settings_not_enforced_here_are_named_at_deploy(
    ws: Workspace, model: Model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = fixed(1, enable_app_insights=True, namespace="team-a")
    service = Model.deploy(ws, "warned-svc", [model], source(tmp_path), config)
    printed = capsys.readouterr().err
    for key in ("appInsightsEnabled", "namespace"):
        assert any(key in w for w in service.warnings), key
        assert f"Warning: {key}" in printed
    service.wait_for_deployment()
    assert Webservice(ws, "warned-svc").warnings == service.warnings


HUNGRY = """
    import os

    def init():
        pass

    def run(raw):
        if raw == "eat":
            hoard = bytearray(400 * 1024 * 1024)  # over the 0.2 GB limit
            hoard[::4096] = b"x" * len(hoard[::4096])
        return {"pid": os.getpid()}
"""


def test_a_memory_limit_is_enforced_or_said_to_be_not(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "hungry"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(HUNGRY))

    config = fixed(1, auth_enabled=False, memory_gb=0.1, memory_gb_limit=0.2)
    inference = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "hungry-svc", [model], inference, config)
    service.wait_for_deployment()
    unenforced = [w for w in service.warnings if "not enforced" in w]
    replica = service.serialize()["replicas"][0]
    if unenforced:  # this machine has no cgroup we may write: the deploy said so
        assert "memory_gb, memory_gb_limit" in unenforced[0]
        assert replica["limits"].startswith("not enforced")
        return
    assert replica["limits"] == "enforced"
    pid = httpx.post(service.scoring_uri, content=b"small", timeout=30).json()["pid"]
    groups = Path(f"/proc/{pid}/cgroup").read_text()
    assert "/modelport/" in groups
    memory = next(line.split(":", 2)[2] for line in groups.splitlines() if "memory" in line)
    limit = Path("/sys/fs/cgroup/memory", memory.lstrip("/"), "memory.limit_in_bytes")
    if limit.exists():
        assert abs(int(limit.read_text()) - int(0.2 * GB)) < 4096  # rounded to a page
    answer = httpx.post(service.scoring_uri, content=b"eat", timeout=60)
    assert answer.status_code == 502
    assert "killed by signal 9 for going over its memory limit" in answer.json()["error"]["message"]
    assert not alive(pid)


def test_tags_properties_and_description_are_kept_and_change_no_replica(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = fixed(1, tags={"team": "a"}, properties={"owner": "x"}, description="first")
    service = Model.deploy(ws, "tagged-svc", [model], source(tmp_path), config)
    service.wait_for_deployment()
    assert (service.tags, service.properties, service.description) == (
        {"team": "a"},
        {"owner": "x"},
        "first",
    )
    service.update(tags={"team": "b"}, description="second")
    service.add_properties({"stage": "prod"})
    again = Webservice(ws, "tagged-svc")
    assert again.tags == {"team": "b"} and again.description == "second"
    assert again.properties == {"owner": "x", "stage": "prod"}
    assert again.serialize()["generation"] == 1  # nothing was rolled out
    with pytest.raises(ConflictError, match="owner"):
        again.add_properties({"owner": "y"})
    assert [s.name for s in Webservice.list(ws, tags=[["team", "b"]])] == ["tagged-svc"]
    assert Webservice.list(ws, tags=["missing"]) == []
    assert [s.name for s in Webservice.list(ws, model_name="scaler")] == ["tagged-svc"]


def test_a_local_service_keeps_its_port_and_v1_uri_across_updates(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(
        ws, "local-port", [model], source(tmp_path), LocalWebservice.deploy_configuration()
    )
    service.wait_for_deployment()
    uri = service.scoring_uri
    assert uri.startswith("http://localhost:") and uri.endswith("/score")
    assert httpx.post(uri, json={"x": [1]}).json()["version"] == "1"
    service.update(inference_config=source(tmp_path, "2", "v2"))
    service.wait_for_deployment()
    assert service.scoring_uri == uri
    wait_for(
        lambda: httpx.post(uri, json={"x": [1]}).json()["version"] == "2",
        what="the new version on the same port",
    )
    assert post(service, {"x": [2]}).json()["y"] == [20]


def test_aci_deploys_here_as_one_replica_and_says_so(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)
    service = Model.deploy(ws, "aci-svc", [model], source(tmp_path), config)
    service.wait_for_deployment()
    assert isinstance(Webservice(ws, "aci-svc"), AciWebservice)
    assert service.compute_type == "ACI" and len(service.serialize()["replicas"]) == 1
    assert any("single-replica service" in w for w in service.warnings)
    assert post(service, {"x": [1]}).status_code == 401
    assert post(service, {"x": [1]}, service.get_keys()[0]).json()["y"] == [10]
    for pem in ("c.pem", "k.pem"):
        (tmp_path / pem).write_text("-----BEGIN-----\n")
    tls = AciWebservice.deploy_configuration(
        ssl_enabled=True,
        ssl_cert_pem_file=str(tmp_path / "c.pem"),
        ssl_key_pem_file=str(tmp_path / "k.pem"),
        ssl_cname="x.y",
    )
    with pytest.raises(ConfigError, match="sslEnabled: TLS"):
        Model.deploy(ws, "aci-tls", [model], source(tmp_path), tls)


def test_raw_api_legacy_conda_file_is_converted_by_the_server(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "legacy-src"
    folder.mkdir()
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return 'ok'\n")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (folder / "env.yml").write_text(f"dependencies:\n- python={version}\n- pip\n")
    snapshot = upload_snapshot(ws, "legacy-src", source_files(folder))
    body = {
        "name": "raw-legacy",
        "models": [model.id],
        "snapshot": snapshot,
        "inferenceConfig": {
            "entryScript": "score.py",
            "sourceDirectory": "legacy-src",
            "runtime": "python",
            "condaFile": "env.yml",
        },
        "deploymentConfig": {
            "computeType": "aks",
            "numReplicas": 1,
            "authEnabled": False,
            "autoScaler": {"autoscaleEnabled": False},
        },
    }
    created = ws.client.call("POST", "/api/v1/services", json=body)
    assert created["environment"]["name"] == "raw-legacy-env"
    assert "condaFile" not in created["inferenceConfig"]
    service = Webservice(ws, "raw-legacy")
    service.wait_for_deployment(timeout_sec=180)
    assert httpx.post(service.scoring_uri, content=b"{}", timeout=30).json() == "ok"


def test_an_environment_that_cannot_build_here_is_refused_at_deploy(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "old-python"
    folder.mkdir()
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return 1\n")
    (folder / "env.yml").write_text("dependencies:\n- python=3.6.2\n- pip:\n  - azureml-defaults\n")
    config = InferenceConfig(
        entry_script="score.py", source_directory=folder, runtime="python", conda_file="env.yml"
    )
    with pytest.raises(EnvironmentBuildError, match=r"python=3\.6\.2"):
        Model.deploy(ws, "old-python", [model], config, fixed(1))
    assert Webservice.list(ws) == []


GPU_SCORE = """
    import os

    def init():
        pass

    def run(raw):
        return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
"""


def test_gpus_are_dealt_to_replicas_and_too_many_is_unschedulable(tmp_path: Path) -> None:
    """A server given three GPUs (CUDA_VISIBLE_DEVICES) gives each replica its own; a
    service needing more than are free is Unschedulable with the counts."""
    server = ServerProcess(tmp_path / "home", env={"CUDA_VISIBLE_DEVICES": "0,1,2"})
    try:
        with Workspace.from_config(server.home) as ws:
            (tmp_path / "m.txt").write_text("m")
            model = Model.register(ws, tmp_path / "m.txt", "m")
            src = tmp_path / "gpu"
            src.mkdir()
            (src / "score.py").write_text(textwrap.dedent(GPU_SCORE))
            ic = InferenceConfig(entry_script="score.py", source_directory=src)
            two = AksWebservice.deploy_configuration(
                autoscale_enabled=False, num_replicas=2, gpu_cores=1, auth_enabled=False
            )
            first = Model.deploy(ws, "gpu-a", [model], ic, two)
            first.wait_for_deployment()
            seen = {first.run({}) for _ in range(20)}
            assert seen == {"0", "1"}
            big = AksWebservice.deploy_configuration(
                autoscale_enabled=False, num_replicas=1, gpu_cores=2, auth_enabled=False
            )
            second = Model.deploy(ws, "gpu-b", [model], ic, big)
            with pytest.raises(ModelportError, match="Unschedulable"):
                second.wait_for_deployment()
            assert "need 2; this machine has 3, 1 free" in str(second.error)
            first.delete()
            second = Model.deploy(ws, "gpu-b", [model], ic, big, overwrite=True)
            second.wait_for_deployment()
            assert second.run({}) == "0,1"
            second.delete()
    finally:
        server.stop()
