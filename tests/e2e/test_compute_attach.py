"""Attaching clusters as a user does, with the CLI and the SDK, against a real server.

The tests marked ``kube`` need a real Kubernetes API server: the ``kube_cluster``
fixture of tests/kube/fixtures.py (the harness of scripts/kube-harness), whose
``.kubeconfig`` is the path of an admin kubeconfig; the others need no cluster.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelport import (
    AksCompute,
    ComputeTarget,
    InferenceConfig,
    LocalWebservice,
    Model,
    Workspace,
)
from modelport.errors import InvalidInputError
from modelport.sdk.kubeconfig import flatten
from tests.conftest import ServerProcess
from tests.e2e.test_cli import Cli

LIMITED_NAMESPACE = "modelport-limited"


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    return Cli(server.home, tmp_path)


def _secrets(kubeconfig: Path) -> list[str]:
    """The credentials in a kubeconfig, as they could leak: token and key data."""
    user = yaml.safe_load(flatten(kubeconfig))["users"][0]["user"]
    found = [user.get("token"), user.get("client-key-data"), user.get("password")]
    if user.get("client-key-data"):
        found += base64.b64decode(user["client-key-data"]).decode().splitlines()[1:-1]
    return [s for s in found if s]


def _kubeconfig(
    path: Path, server: str, user: dict[str, Any], trust: dict[str, Any] | None = None
) -> Path:
    """A kubeconfig with one context, ``dev``: ``server`` (with ``trust``: CA data or
    insecure-skip-tls-verify) and ``user``'s credentials."""
    cluster = {"server": server, **(trust or {})}
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "dev",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return path


def _score_config(tmp_path: Path) -> InferenceConfig:
    """An entry script and inferenceconfig.json in a folder of their own (``app``)."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (app / "ic.json").write_text('{"entryScript": "score.py"}')
    return InferenceConfig(entry_script=str(app / "score.py"))


def test_without_a_cluster_attach_and_deploy_say_what_is_wrong(
    cli: Cli, server: ServerProcess, model: Model, tmp_path: Path
) -> None:
    closed = _kubeconfig(tmp_path / "closed", "https://127.0.0.1:1", {"token": "not-sent"})
    refused = cli("compute", "attach", "myaks", "--kubeconfig", str(closed))
    assert refused.code == 10, (refused.out, refused.err)
    assert refused.err.startswith(
        "Error: cannot reach the Kubernetes API server https://127.0.0.1:1 (context 'dev')"
    )
    plugin = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin"}
    command = _kubeconfig(tmp_path / "exec", "https://127.0.0.1:1", {"exec": plugin})
    execs = cli("compute", "attach", "myaks", "--kubeconfig", str(command))
    assert execs.code == 10 and "the server runs no command from a kubeconfig" in execs.err
    assert cli("compute", "list", "-o", "json").json() == []
    with Workspace.from_config(server.home) as ws, pytest.raises(InvalidInputError) as caught:
        Model.deploy(ws, "svc", [model], _score_config(tmp_path), deployment_target="myaks")
    assert caught.value.message == (
        "compute target 'myaks' is not attached; attach it with modelport compute attach"
    )
    ic = str(tmp_path / "app" / "ic.json")
    deploy = cli("model", "deploy", "-n", "svc", "-m", model.id, "-ic", ic, "-ct", "myaks")
    assert deploy.code == 2 and "compute target 'myaks' is not attached" in deploy.err


@pytest.mark.kube
def test_attach_list_show_and_detach_a_real_cluster(
    kube_cluster: Any, cli: Cli, server: ServerProcess, model: Model, tmp_path: Path
) -> None:
    kubeconfig = Path(kube_cluster.kubeconfig)
    secrets = _secrets(kubeconfig)
    attached = cli(
        "compute",
        "attach",
        "myaks",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        "modelport-e2e",
        "--cluster-purpose",
        "DevTest",
    )
    assert attached.code == 0, attached.err
    assert attached.out.startswith("Attached compute target myaks: ")
    assert "(Kubernetes v1." in attached.out and "namespace modelport-e2e, DevTest" in attached.out
    listed = cli("compute", "list")
    assert listed.code == 0 and listed.out.splitlines()[1].startswith("myaks  AKS   Succeeded")
    shown = cli("compute", "show", "myaks", "-o", "json")
    details = shown.json()["properties"]["properties"]
    assert details["namespace"] == "modelport-e2e" and details["clusterPurpose"] == "DevTest"

    with Workspace.from_config(server.home) as ws:
        aks = ComputeTarget(ws, "myaks")
        assert type(aks) is AksCompute and aks.get_status() == "Succeeded"
        config = AksCompute.attach_configuration(kubeconfig=kubeconfig, namespace="other")
        second = ComputeTarget.attach(ws, "second", config)
        second.wait_for_completion(show_output=False)
        assert [t.name for t in ComputeTarget.list(ws)] == ["myaks", "second"]
        local = LocalWebservice.deploy_configuration()
        with pytest.raises(InvalidInputError, match="cannot be deployed to the Kubernetes"):
            Model.deploy(ws, "svc", [model], _score_config(tmp_path), local, deployment_target=aks)
        second.detach()
    answers = attached.out + listed.out + shown.out + cli("compute", "list", "-o", "json").out
    log = (server.home.parent / f"{server.home.name}-server.log").read_text(errors="replace")
    for secret in secrets:
        assert secret not in answers and secret not in log
    assert "kubeconfig" not in shown.out
    detached = cli("compute", "detach", "myaks")
    assert detached.code == 0 and cli("compute", "list", "-o", "json").json() == []


@pytest.fixture
def limited_kubeconfig(kube_cluster: Any, tmp_path: Path) -> Iterator[Path]:
    """A ServiceAccount's kubeconfig that may manage deployments and read pods only."""
    from lightkube import Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
    from lightkube.resources.core_v1 import Namespace, Secret, ServiceAccount
    from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

    admin = yaml.safe_load(flatten(kube_cluster.kubeconfig))
    client = Client(KubeConfig.from_dict(admin), namespace=LIMITED_NAMESPACE)
    ns = LIMITED_NAMESPACE
    client.create(Namespace(metadata=ObjectMeta(name=ns)))
    try:
        client.create(ServiceAccount(metadata=ObjectMeta(name="limited", namespace=ns)))
        rules = [
            PolicyRule(apiGroups=["apps"], resources=["deployments"], verbs=["*"]),
            PolicyRule(apiGroups=[""], resources=["pods"], verbs=["get", "list", "watch"]),
        ]
        client.create(Role(metadata=ObjectMeta(name="limited", namespace=ns), rules=rules))
        client.create(
            RoleBinding(
                metadata=ObjectMeta(name="limited", namespace=ns),
                roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name="limited"),
                subjects=[Subject(kind="ServiceAccount", name="limited", namespace=ns)],
            )
        )
        token = _service_account_token(client, Secret, ServiceAccount)
        cluster = admin["clusters"][0]["cluster"]
        path = tmp_path / "limited"
        trust = {k: v for k, v in cluster.items() if k != "server"}
        yield _kubeconfig(path, cluster["server"], {"token": token}, trust)
    finally:
        client.delete(Namespace, ns)
        client.close()


def _service_account_token(client: Any, secret_kind: Any, account_kind: Any) -> str:
    """The token the token controller (kube-controller-manager) writes for the account."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        account = client.get(account_kind, "limited")
        if account.secrets:
            secret = client.get(secret_kind, account.secrets[0].name)
            return base64.b64decode(secret.data["token"]).decode()
        time.sleep(0.2)
    raise AssertionError("no token was made for the ServiceAccount in 30 s")


@pytest.mark.kube
def test_attach_names_every_permission_the_credentials_lack(
    limited_kubeconfig: Path, cli: Cli
) -> None:
    result = cli(
        "compute",
        "attach",
        "limited",
        "--kubeconfig",
        str(limited_kubeconfig),
        "--namespace",
        LIMITED_NAMESPACE,
    )
    assert result.code == 10, (result.out, result.err)
    assert result.err.startswith("Error: the credentials may not: ")
    for missing in (
        "get, patch, update deployments/scale (apps)",
        "get, list, watch, create, update, patch, delete secrets (core)",
        "get pods/log (core)",
        "get, list, watch endpointslices (discovery.k8s.io)",
        f"in namespace '{LIMITED_NAMESPACE}'",
    ):
        assert missing in result.err
    assert "deployments (apps);" not in result.err  # what the Role grants is not listed
    assert cli("compute", "list", "-o", "json").json() == []
