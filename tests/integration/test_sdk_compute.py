"""ComputeTarget, AksCompute and ``modelport compute`` against the management API in
process (the cluster behind httpx2's MockTransport), as a v1 notebook uses them."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from modelport import AksCompute, ComputeTarget, Workspace
from modelport.cli import compute as cli_compute
from modelport.cli.main import cli
from modelport.compute.kubernetes.attach import inspect_cluster
from modelport.control.api_computes import cluster_inspector
from modelport.control.app import create_app
from modelport.control.workspace import ServerWorkspace
from modelport.errors import ComputeTargetError, ComputeTargetNotFoundError
from modelport.exceptions import ComputeTargetException
from modelport.sdk.kubeconfig import flatten
from tests.unit.test_kube_api import TOKEN, cluster, config_doc

ADMIN = "t" * 43


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    server_ws = ServerWorkspace.open(tmp_path / "home", None, ADMIN)
    app = create_app(server_ws)
    transport = httpx2.MockTransport(cluster())
    app.dependency_overrides[cluster_inspector] = lambda: functools.partial(
        inspect_cluster, transport=transport
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        workspace = Workspace("http://testserver", ADMIN)
        workspace.client._http.close()
        workspace.client._http = client  # the SDK's requests go to the app in process
        yield workspace
    server_ws.close()


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config_doc()))
    return path


def test_attach_get_list_status_serialize_and_detach_as_v1(
    ws: Workspace, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = AksCompute.attach_configuration(
        cluster_purpose=AksCompute.ClusterPurpose.DEV_TEST, kubeconfig=str(kubeconfig)
    )
    aks = ComputeTarget.attach(ws, "myaks", config)
    assert type(aks) is AksCompute
    aks.wait_for_completion(show_output=True)
    assert 'Provisioning operation finished, operation "Succeeded"' in capsys.readouterr().err
    assert (aks.provisioning_state, aks.get_status(), aks.cluster_purpose) == (
        "Succeeded",
        "Succeeded",
        "DevTest",
    )
    assert (aks.namespace, aks.context, aks.server, aks.server_version) == (
        "ml",
        "dev",
        "k8s.example:6443",
        "v1.20.2",
    )
    assert type(ComputeTarget(ws, "myaks")) is AksCompute
    assert AksCompute(ws, "myaks").namespace == "ml"
    assert [t.name for t in ComputeTarget.list(ws)] == ["myaks"]
    data = aks.serialize()
    assert data["properties"]["computeType"] == "AKS"
    assert data["properties"]["properties"]["clusterPurpose"] == "DevTest"
    assert TOKEN not in json.dumps(data) and TOKEN not in repr(aks)
    again = ComputeTarget.deserialize(ws, data)
    assert type(again) is AksCompute and again.serialize() == data
    aks.detach()
    assert aks.provisioning_state == "Deleting"
    with pytest.raises(ComputeTargetException) as caught:
        ComputeTarget(ws, "myaks")
    assert isinstance(caught.value, ComputeTargetNotFoundError)
    assert caught.value.message == (
        "ComputeTargetNotFound: Compute Target with name myaks not found in provided workspace"
    )


def test_azure_arguments_are_taken_with_a_warning_and_a_kubeconfig_is_required(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    AksCompute.attach_configuration(
        resource_group="rg", cluster_name="aks", kubeconfig=kubeconfig, namespace="ml"
    )
    assert capsys.readouterr().err == (
        "Warning: resource_group, cluster_name: not used; modelport reaches the cluster "
        "through the kubeconfig\n"
    )
    with pytest.raises(ComputeTargetException, match="through a kubeconfig: give kubeconfig="):
        AksCompute.attach_configuration(resource_group="rg", cluster_name="aks")
    with pytest.raises(ComputeTargetException, match="is not a file"):
        AksCompute.attach_configuration(kubeconfig=kubeconfig.parent / "missing")
    with pytest.raises(Exception, match="must be FastProd or DevTest"):
        AksCompute.attach_configuration(kubeconfig=kubeconfig, cluster_purpose="Prod")
    assert AksCompute.attach_configuration(kubeconfig=kubeconfig).cluster_purpose == "FastProd"


def test_modelport_never_creates_or_deletes_a_cluster(ws: Workspace, kubeconfig: Path) -> None:
    with pytest.raises(ComputeTargetError, match="does not create clusters"):
        AksCompute.provisioning_configuration(agent_count=3)
    with pytest.raises(ComputeTargetError, match="does not create clusters"):
        ComputeTarget.create(ws, "new", None)
    aks = ComputeTarget.attach(ws, "myaks", AksCompute.attach_configuration(kubeconfig=kubeconfig))
    with pytest.raises(ComputeTargetError, match="it is never deleted"):
        aks.delete()


def test_the_kubeconfig_sent_holds_one_context_with_its_files_inlined(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(b"CA")
    (tmp_path / "pki" / "u.key").write_bytes(b"KEY")
    (tmp_path / "token").write_text("file-token\n")
    doc = config_doc()
    doc["clusters"][0]["cluster"]["certificate-authority"] = "pki/ca.crt"
    doc["users"][0]["user"] = {"tokenFile": str(tmp_path / "token"), "client-key": "pki/u.key"}
    doc["clusters"].append({"name": "p", "cluster": {"server": "https://prod"}})
    doc["contexts"].append({"name": "prod", "context": {"cluster": "p", "user": "u"}})
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    sent = yaml.safe_load(flatten(path, "dev"))
    assert sent["current-context"] == "dev"
    assert [c["name"] for c in sent["contexts"]] == ["dev"]
    assert sent["clusters"] == [
        {
            "name": "c",
            "cluster": {
                "server": "https://k8s.example:6443",
                "certificate-authority-data": base64.b64encode(b"CA").decode(),
            },
        }
    ]
    assert sent["users"] == [
        {
            "name": "u",
            "user": {"token": "file-token", "client-key-data": base64.b64encode(b"KEY").decode()},
        }
    ]
    with pytest.raises(ComputeTargetError, match="has no context 'nope'"):
        flatten(path, "nope")
    (tmp_path / "pki" / "ca.crt").unlink()
    with pytest.raises(ComputeTargetError, match=r"cannot read certificate-authority .*ca\.crt"):
        flatten(path)


def _cli(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(cli_compute, "_workspace", lambda: ws)
    return CliRunner().invoke(cli, ["compute", *args], catch_exceptions=False)


def test_the_compute_commands(
    ws: Workspace, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attached = _cli(ws, monkeypatch, "attach", "myaks", "--kubeconfig", str(kubeconfig))
    assert attached.exit_code == 0, attached.output
    assert attached.stdout == (
        "Attached compute target myaks: k8s.example:6443 (Kubernetes v1.20.2), context dev, "
        "namespace ml, FastProd\n"
    )
    listed = _cli(ws, monkeypatch, "list")
    assert listed.stdout.splitlines() == [
        "name   type  state      purpose   server            version  context  namespace",
        "myaks  AKS   Succeeded  FastProd  k8s.example:6443  v1.20.2  dev      ml",
    ]
    shown = _cli(ws, monkeypatch, "show", "myaks", "-o", "json")
    assert json.loads(shown.stdout)["properties"]["properties"]["namespace"] == "ml"
    assert TOKEN not in shown.stdout + listed.stdout + attached.stdout
    again = _cli(ws, monkeypatch, "attach", "myaks", "--kubeconfig", str(kubeconfig))
    assert again.exit_code == 5 and "already attached" in again.stderr
    assert _cli(ws, monkeypatch, "detach", "myaks").stdout == "Detached compute target myaks\n"
    missing = _cli(ws, monkeypatch, "show", "myaks")
    assert missing.exit_code == 3
    assert missing.stderr.startswith("Error: ComputeTargetNotFound: Compute Target with name")
