"""What only a cluster shows: the manifests modelport applies carry the v1 settings,
a crashing init() fails a roll-out with its traceback while the last generation
serves on, an HPA on a modelport Deployment is warned about, leftovers of deleted
services are removed by the next control plane, and collected model data and
captured requests reach the workspace."""

from __future__ import annotations

import json
import secrets
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret
from lightkube.resources.networking_v1 import NetworkPolicy

from modelport import (
    AksWebservice,
    ComputeTarget,
    InferenceConfig,
    Model,
    Webservice,
    Workspace,
)
from modelport.errors import ModelportError
from tests.certs import Pki
from tests.conftest import ServerProcess, wait_for
from tests.e2e.clusters import Attached, attached
from tests.e2e.test_cli import Cli
from tests.e2e.test_logs import PRINTING, _collect
from tests.e2e.test_model_data import COLLECTING, rows
from tests.e2e.test_services import fixed, post, source

HPA = create_namespaced_resource(
    "autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers"
)


@pytest.fixture
def cluster(server: ServerProcess, kube_cluster: Any) -> Iterator[Attached]:
    with attached(server, kube_cluster, purpose="DevTest") as found:
        yield found


def test_the_deployment_carries_the_v1_settings(
    cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = fixed(
        1,
        cpu_cores=0.5,
        memory_gb=0.25,
        cpu_cores_limit=1,
        memory_gb_limit=0.5,
        period_seconds=7,
        initial_delay_seconds=20,
        timeout_seconds=3,
        failure_threshold=4,
    )
    service = Model.deploy(ws, "shaped", [model], source(tmp_path), config, cluster.target)
    service.wait_for_deployment()
    made = cluster.client.get(Deployment, "shaped-1", namespace=cluster.namespace)
    container = next(c for c in made.spec.template.spec.containers if c.name == "score")
    assert container.resources.requests == {"cpu": "500m", "memory": "256Mi"}
    assert container.resources.limits == {"cpu": "1", "memory": "512Mi"}
    live = container.livenessProbe
    assert (live.periodSeconds, live.initialDelaySeconds, live.timeoutSeconds) == (7, 20, 3)
    assert live.failureThreshold == 4
    assert made.metadata.ownerReferences[0].kind == "ConfigMap"
    fence = cluster.client.get(NetworkPolicy, "shaped-1", namespace=cluster.namespace)
    router_only = fence.spec.ingress[0]
    assert router_only.ports[0].port == 5001
    assert router_only.from_[0].podSelector.matchLabels["app.kubernetes.io/component"] == "router"
    assert service.run({"x": [2]})["y"] == [20]
    service.delete()


CRASHING = """
    def init():
        raise RuntimeError("init exploded on purpose")

    def run(raw):
        return raw
"""


def test_a_crashing_init_fails_the_roll_out_and_the_last_generation_serves_on(
    cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "stubborn", [model], source(tmp_path), fixed(1), cluster.target)
    service.wait_for_deployment()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "score.py").write_text(textwrap.dedent(CRASHING))
    service.update(
        inference_config=InferenceConfig(entry_script="score.py", source_directory=broken)
    )
    with pytest.raises(ModelportError, match="Failed"):
        service.wait_for_deployment()
    assert "init exploded on purpose" in str(service.error)
    assert "Traceback" in str(service.error)
    assert service.run({"x": [1]})["version"] == "1"  # the first generation serves on
    service.delete()


def test_an_hpa_on_a_modelport_deployment_is_warned_about(
    cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    hpa = HPA.from_dict(
        {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "someone-elses", "namespace": cluster.namespace},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "fought-1",
                },
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        }
    )
    cluster.client.create(hpa)
    service = Model.deploy(ws, "fought", [model], source(tmp_path), fixed(1), cluster.target)
    service.wait_for_deployment()
    messages = service.serialize()["deploymentStatus"]["messages"]
    assert any("HorizontalPodAutoscaler someone-elses targets fought-1" in m for m in messages)
    service.delete()


def test_a_restarted_control_plane_removes_what_deleted_services_left(
    cluster: Attached, server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "keeper", [model], source(tmp_path), fixed(1), cluster.target)
    service.wait_for_deployment()
    labels = cluster.client.get(ConfigMap, "keeper", namespace=cluster.namespace).metadata.labels
    left = ConfigMap.from_dict(
        {
            "metadata": {
                "name": "ghost",
                "namespace": cluster.namespace,
                "labels": {**labels, "modelport.io/service": "ghost"},
            }
        }
    )
    cluster.client.create(left)  # as a control plane cut short in a delete leaves it
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    restarted = ServerProcess(server.home, router_port=None)
    try:

        def ghost_gone() -> bool:
            names = [
                c.metadata.name for c in cluster.client.list(ConfigMap, namespace=cluster.namespace)
            ]
            return "ghost" not in names and "keeper" in names

        wait_for(ghost_gone, timeout_s=30, what="the leftovers of a deleted service to go")
        with Workspace.from_config(server.home) as again:
            kept = Webservice(again, "keeper")
            assert kept.state == "Healthy" and kept.run({"x": [1]})["y"] == [10]
            kept.delete()
    finally:
        restarted.stop()


def test_autoscaling_settings_reach_the_cluster_through_the_scale_subresource(
    cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = AksWebservice.deploy_configuration(
        autoscale_enabled=True, autoscale_min_replicas=2, autoscale_max_replicas=3
    )
    service = Model.deploy(ws, "floor", [model], source(tmp_path), config, cluster.target)
    service.wait_for_deployment()
    made = cluster.client.get(Deployment, "floor-1", namespace=cluster.namespace)
    assert made.spec.replicas == 2  # the autoscaler's floor; never an HPA
    assert not list(cluster.client.list(HPA, namespace=cluster.namespace))
    service.delete()


def test_install_again_keeps_the_router_token_and_prints_what_it_applies(
    cluster: Attached, ws: Workspace
) -> None:
    target = ComputeTarget(ws, "myaks")
    before = cluster.client.get(Secret, "modelport-router", namespace=cluster.namespace)
    again = target.install()
    assert again["applied"][0] == f"Namespace/{cluster.namespace}"
    after = cluster.client.get(Secret, "modelport-router", namespace=cluster.namespace)
    # the routers keep working across installs: their token and capture credential stay
    assert after.data == before.data and set(after.data) == {"token", "capture"}
    printed = target.manifests()
    kinds = [m["kind"] for m in printed]
    assert kinds == [a.split("/")[0] for a in again["applied"]]
    router = next(m for m in printed if m["kind"] == "Deployment")
    assert router["spec"]["replicas"] == 1  # DevTest: one router pod
    service = next(m for m in printed if m["kind"] == "Service")
    assert service["spec"]["type"] == "LoadBalancer"


def test_the_v1_cli_line_deploys_to_a_freshly_attached_cluster(
    server: ServerProcess, kube_cluster: Any, tmp_path: Path
) -> None:
    """As a migrating team does it: attach, then the v1 CLI line with v1 files; the first
    deploy installs the router itself; score with a key; delete; nothing is left."""
    namespace = f"mp-{secrets.token_hex(4)}"
    app = tmp_path / "app"  # the v1 files, in a folder of their own (it is uploaded)
    app.mkdir()
    cli = Cli(server.home, app)
    attach = cli(
        "compute",
        "attach",
        "myaks",
        "--kubeconfig",
        str(kube_cluster.kubeconfig),
        "--namespace",
        namespace,
        "--cluster-purpose",
        "DevTest",
    )
    assert attach.code == 0, attach.err
    (app / "model.txt").write_text("7")
    (app / "score.py").write_text(
        "import os\n"
        "def init():\n"
        "    global k\n"
        "    k = int(open(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'model.txt')).read())\n"
        "def run(data):\n"
        "    import json\n"
        "    return [x * k for x in json.loads(data)['data']]\n"
    )
    (app / "inferenceconfig.json").write_text('{"entryScript": "score.py"}')
    (app / "deploymentconfig.json").write_text(
        '{"computeType": "aks", "autoScaler": {"autoscaleEnabled": false}, "numReplicas": 2}'
    )
    client = kube_cluster.client()
    try:
        assert cli("model", "register", "-n", "mymodel", "-p", "model.txt").code == 0
        deploy = cli(
            "model",
            "deploy",
            "-ct",
            "myaks",
            "-m",
            "mymodel:1",
            "-n",
            "myservice",
            "-ic",
            "inferenceconfig.json",
            "-dc",
            "deploymentconfig.json",
        )
        assert deploy.code == 0, deploy.err
        assert "installing the router" in deploy.err
        shown = cli("service", "show", "-n", "myservice", "-o", "json").json()
        assert shown["state"] == "Healthy" and shown["computeType"] == "AKS"
        keys = cli("service", "get-keys", "-n", "myservice", "-o", "json").json()
        headers = {"Authorization": f"Bearer {keys['primaryKey']}"}
        answer = httpx.post(shown["scoringUri"], json={"data": [1, 2]}, headers=headers)
        assert answer.status_code == 200 and answer.json() == [7, 14]
        assert httpx.post(shown["scoringUri"], json={"data": [1]}).status_code == 401
        assert cli("service", "delete", "-n", "myservice").code == 0
        labels = {"modelport.io/service": "myservice"}

        def left() -> list[str]:
            return [
                f"{kind.__name__}/{obj.metadata.name}"
                for kind in (Deployment, ConfigMap, Secret, Pod)
                for obj in client.list(kind, namespace=namespace, labels=labels)
            ]

        wait_for(lambda: not left(), timeout_s=60, what="nothing of the service left")
    finally:
        if any(n.metadata.name == namespace for n in client.list(Namespace)):
            client.delete(Namespace, namespace)


def _scores(service: Webservice) -> bool:
    """One https scoring call; False while an old plain router pod still answers."""
    try:
        return bool(service.run({"x": [2]})["y"] == [20])
    except ModelportError:
        return False


def test_the_cluster_routers_serve_https_with_a_tls_secret(
    server: ServerProcess, cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """cert-manager's layout: a Secret with tls.crt/tls.key; the routers serve it, the
    scoring URI says https, and the SDK verifies the chain against the given CA."""
    target = ComputeTarget(ws, "myaks")
    with pytest.raises(ModelportError, match=r"the TLS Secret 'router-tls' .* does not exist"):
        target.install(tls="router-tls")
    plain = wait_for(
        lambda: (u := target.install()["routerUri"]).startswith("http://127.") and u,
        timeout_s=60,
        what="the router's load balancer address",
    )
    address = urlsplit(plain).hostname
    assert address is not None
    pki = Pki.make(tmp_path / "pki")
    cert, key, _ = pki.leaf("router", hosts=(address,))
    secret = Secret(
        metadata=ObjectMeta(name="router-tls", namespace=cluster.namespace),
        type="kubernetes.io/tls",
        stringData={"tls.crt": cert.read_text(), "tls.key": key.read_text()},
    )
    cluster.client.create(secret)
    installed = target.install(tls="router-tls")
    assert installed["routerUri"] == f"https://{address}"
    with Workspace.from_config(server.home, ca_bundle=pki.ca) as trusting:
        on_cluster = ComputeTarget(trusting, "myaks")
        service = Model.deploy(trusting, "secured", [model], source(tmp_path), fixed(1), on_cluster)
        service.wait_for_deployment()
        assert service.scoring_uri.startswith(f"https://{address}/")
        assert wait_for(lambda: _scores(service), timeout_s=60, what="https scoring")
        service.delete()
    again = target.install()  # without --tls-secret: as installed
    assert again["routerUri"] == f"https://{address}"


COLLECTING_ON_A_CLUSTER = (
    COLLECTING
    + """
    import os
    collecting_run = run

    def run(raw):  # what the entry script can see of the pod's settings, besides
        answer = collecting_run(raw)
        prefixes = ("MODELPORT_MODELDATA", "MODELPORT_STAGE")
        answer["seen"] = sorted(k for k in os.environ if k.startswith(prefixes))
        return answer
"""
)


def test_model_data_of_cluster_replicas_lands_in_the_workspace(
    server: ServerProcess, cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """ModelDataCollector in a pod: its rows reach the workspace's partitions through
    the control plane (the pod's disk keeps nothing), joined by correlation id; the
    credential that carries them is not in the entry script's environment."""
    folder = tmp_path / "collecting"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(COLLECTING_ON_A_CLUSTER))
    inference = InferenceConfig(entry_script="score.py", source_directory=folder)
    config = fixed(1, collect_model_data=True)
    service = Model.deploy(ws, "dc-kube", [model], inference, config, cluster.target)
    service.wait_for_deployment()
    assert not [w for w in service.warnings if "collectModelData" in w]
    secret = cluster.client.get(Secret, "dc-kube-1-stage", namespace=cluster.namespace)
    assert set(secret.data or {}) == {"token", "modeldata"}
    scored = {}
    for i in range(4):
        answer = service.run({"data": [i, i + 1]})
        assert answer["seen"] == ["MODELPORT_MODELDATA_URL"], answer["seen"]
        scored[answer["correlations"]["$aml_dc_correlation_id"]] = (i, answer["y"][0])
    home = server.home
    wait_for(
        lambda: len(rows(home, "inputs")) == 4 and len(rows(home, "predictions")) == 4,
        timeout_s=60,
        what="4 rows of inputs and of predictions in the workspace",
    )
    inputs = {r["$aml_dc_correlation_id"]: r for r in rows(home, "inputs")}
    predictions = {r["$aml_dc_correlation_id"]: r for r in rows(home, "predictions")}
    assert set(inputs) == set(predictions) == set(scored)
    for ident, (i, y) in scored.items():
        assert (inputs[ident]["a"], inputs[ident]["b"]) == (str(i), str(i + 1))
        assert predictions[ident]["y"] == str(y)
        assert inputs[ident]["$aml_service_name"] == "dc-kube"
    day = next((home / "modeldata").rglob("inputs/*/*/*/data.csv"))
    assert day.relative_to(home).parts[:4] == ("modeldata", "default", "dc-kube", "scaler")
    service.update(collect_model_data=False)
    service.wait_for_deployment()
    again = cluster.client.get(Secret, "dc-kube-2-stage", namespace=cluster.namespace)
    assert set(again.data or {}) == {"token"}  # no collection, no credential for it
    assert service.run({"data": [9, 9]})["correlations"] is None
    service.delete()


def test_the_cluster_routers_capture_requests_into_the_workspace(
    server: ServerProcess, cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Capture with no code on a cluster: the router pods send the sampled requests
    through the control plane into the service's model data, redacted as configured,
    and their request log's lines beside the local router's."""
    config = fixed(1, capture_sample_rate=1.0, capture_redact=["$.secret"])
    service = Model.deploy(ws, "cap-kube", [model], source(tmp_path), config, cluster.target)
    service.wait_for_deployment()
    assert not [w for w in service.warnings if "capture" in w.lower()]
    router = cluster.client.get(Secret, "modelport-router", namespace=cluster.namespace)
    assert set(router.data or {}) == {"token", "capture"}
    ids = set()
    for i in range(3):
        answer = post(service, {"x": [i], "secret": "hunter2"}, service.get_keys()[0])
        assert answer.status_code == 200, answer.text
        ids.add(answer.headers["x-request-id"])
    home = server.home
    wait_for(lambda: len(rows(home, "requests")) == 3, timeout_s=60, what="3 captured requests")
    captured = rows(home, "requests")
    assert {r["request_id"] for r in captured} == ids
    assert all(json.loads(r["request"])["secret"] == "[REDACTED]" for r in captured)
    day = next((home / "modeldata").rglob("requests/*/*/*/data.csv"))
    assert day.relative_to(home).parts[:5] == (
        "modeldata",
        "default",
        "cap-kube",
        "_router",
        "default",
    )
    # and the router pods' request log reaches `service requests` too
    logged = wait_for(
        lambda: (found := service.get_requests()) and len(found) >= 3 and found,
        timeout_s=30,
        what="the router pods' request log lines",
    )
    assert {line["requestId"] for line in logged} >= ids
    assert all(line["service"] == "cap-kube" and line["status"] == 200 for line in logged)
    service.delete()


def test_a_clusters_replica_logs_are_followed_with_their_pod_names(
    cluster: Attached, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """--follow on a cluster: every pod's stream at once, each line after its pod's
    name, a print of run() arriving as it is written, with its request id."""
    folder = tmp_path / "printing"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(PRINTING))
    config = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "print-kube", [model], config, fixed(2), cluster.target)
    service.wait_for_deployment()
    pods = {p.metadata.name for p in cluster.client.list(Pod, namespace=cluster.namespace)}
    lines: list[str] = []
    stream = service.follow_logs(tail=20)
    _collect(stream, lines, lambda line: "scoring 41" in line)
    wait_for(lambda: any("init printed this" in x for x in lines), what="the logs so far")
    answer = post(service, {"n": 41}, service.get_keys()[0])
    assert answer.status_code == 200, answer.text
    line = wait_for(
        lambda: next((x for x in lines if "scoring 41" in x), None), what="the printed line"
    )
    pod, _, rest = line[1:].partition("] ")
    assert pod in pods and pod.startswith("print-kube-1-")
    assert rest == f"[{answer.headers['x-request-id']}] scoring 41"
    stream.close()
    tail = service.get_logs(tail=5)
    assert tail and all(x.split("] ")[0][1:] in pods for x in tail.splitlines())
    assert "init printed this" in service.get_logs(since="10m")
    with pytest.raises(ModelportError, match="on a cluster each line starts with its pod's name"):
        service.get_logs(replica=0)
    service.delete()
