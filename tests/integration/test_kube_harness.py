"""The Kubernetes test cluster itself: a real control plane whose pods run for real.

Each test works in a namespace of its own on the session's cluster (``kube_cluster``);
processes are found by a marker in their command line, so what is checked is what runs
on this machine, not only what the API says.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    ConfigMap,
    Namespace,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.types import PatchType

from tests.conftest import wait_for
from tests.kube.fixtures import KubeCluster, start_cluster, stop_cluster
from tests.kube.processes import ProcessRecord, start_time

GPU = "nvidia.com/gpu"
GPU_NODE = "node-1"
SERVER = """
import http.server, os, sys
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], 8080), Hello).serve_forever()
"""
CRASH = """
import sys, traceback
def init():
    raise RuntimeError("model failed to load")
try:
    init()
except Exception:
    traceback.print_exc()
    sys.exit(3)
"""
SLEEPER = "import sys, time; time.sleep(3600)"


def _ignores_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def marker_pids(marker: str) -> set[int]:
    """Live processes whose command line contains ``marker``."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes() and start_time(int(cmdline.parent.name)):
                found.add(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def container(name: str, code: str, *args: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "python:3.11-slim",
        "command": ["python", "-c", code, *args],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        **extra,
    }


def server_container(marker: str) -> dict[str, Any]:
    return container(
        "web",
        SERVER,
        "$(POD_IP)",
        marker,
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )


def deployment(name: str, replicas: int, pod_spec: dict[str, Any]) -> Deployment:
    labels = {"app": name}
    return Deployment.from_dict(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }
    )


def pod(name: str, spec: dict[str, Any]) -> Pod:
    return Pod.from_dict({"metadata": {"name": name}, "spec": spec})


def available(client: Client, name: str, namespace: str, replicas: int) -> bool:
    status = client.get(Deployment, name, namespace=namespace).status
    return bool(
        status
        and status.availableReplicas == replicas
        and status.readyReplicas == replicas
        and any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
    )


def pods_of(client: Client, app: str, namespace: str) -> list[Pod]:
    return list(client.list(Pod, namespace=namespace, labels={"app": app}))


@pytest.fixture
def client(kube_cluster: KubeCluster) -> Iterator[Client]:
    client = kube_cluster.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(client: Client) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (its pods' processes stop with it)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))

    def has_service_account() -> bool:
        try:  # with its token: until then, pods are refused
            return bool(client.get(ServiceAccount, "default", namespace=name).secrets)
        except ApiError:
            return False

    wait_for(has_service_account, 30, "the namespace's default ServiceAccount")
    try:
        yield name
    finally:
        client.delete(Namespace, name)


def test_deployment_serves_at_its_pod_ips_and_scales(client: Client, namespace: str) -> None:
    marker = f"web-{uuid.uuid4().hex}"
    client.create(
        deployment("web", 2, {"containers": [server_container(marker)]}), namespace=namespace
    )
    wait_for(lambda: available(client, "web", namespace, 2), 60, "2 available replicas")

    pods = pods_of(client, "web", namespace)
    assert len(marker_pids(marker)) == 2
    for p in pods:
        assert p.status and p.status.podIP and p.status.podIP.startswith("127.0.")
        answer = httpx.get(f"http://{p.status.podIP}:8080/", trust_env=False, timeout=5)
        assert answer.text == p.metadata.name  # type: ignore[union-attr]
        (status,) = p.status.containerStatuses or []
        pid = int((status.containerID or "").removeprefix("process://"))
        assert pid in marker_pids(marker)
    assert len({p.status.podIP for p in pods if p.status}) == 2

    for replicas in (4, 1):
        client.patch(
            Deployment.Scale,
            "web",
            {"spec": {"replicas": replicas}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        wait_for(lambda n=replicas: len(marker_pids(marker)) == n, 60, f"{replicas} processes")
        wait_for(lambda n=replicas: available(client, "web", namespace, n), 60, "the scale")


def test_a_crashing_container_backs_off_with_its_traceback(
    client: Client, kube_cluster: KubeCluster, namespace: str
) -> None:
    spec = {
        "containers": [container("app", CRASH, terminationMessagePolicy="FallbackToLogsOnError")]
    }
    client.create(pod("crash", spec), namespace=namespace)

    def backing_off() -> Any:
        statuses = client.get(Pod, "crash", namespace=namespace).status.containerStatuses or []  # type: ignore[union-attr]
        waiting = statuses and statuses[0].state and statuses[0].state.waiting
        return statuses[0] if waiting and waiting.reason == "CrashLoopBackOff" else None

    status = wait_for(backing_off, 60, "CrashLoopBackOff")
    assert status.restartCount >= 1
    terminated = status.lastState.terminated
    assert terminated.exitCode == 3
    assert terminated.reason == "Error"
    assert "Traceback (most recent call last)" in terminated.message
    assert "RuntimeError: model failed to load" in terminated.message

    with kube_cluster.http() as http:
        for previous in ("false", "true"):
            log = http.get(
                f"/api/v1/namespaces/{namespace}/pods/crash/log", params={"previous": previous}
            )
            assert log.status_code == 200, log.text
            assert "RuntimeError: model failed to load" in log.text
            assert log.text.startswith("Traceback")
        tail = http.get(f"/api/v1/namespaces/{namespace}/pods/crash/log", params={"tailLines": 1})
        assert tail.text == "RuntimeError: model failed to load\n"


def test_gpus_are_scheduled_only_where_there_are_enough(client: Client, namespace: str) -> None:
    gpu_pod = {
        "containers": [container("app", SLEEPER, resources={"limits": {GPU: "1"}})],
        "terminationGracePeriodSeconds": 1,
    }
    client.create(deployment("gpu", 3, gpu_pod), namespace=namespace)
    wait_for(lambda: available(client, "gpu", namespace, 3), 60, "3 GPU replicas")
    assert {p.spec.nodeName for p in pods_of(client, "gpu", namespace)} == {GPU_NODE}  # type: ignore[union-attr]

    too_many = {"containers": [container("app", SLEEPER, resources={"limits": {GPU: "5"}})]}
    client.create(pod("too-many", too_many), namespace=namespace)

    def unschedulable() -> Any:
        status = client.get(Pod, "too-many", namespace=namespace).status
        return next(
            (
                c
                for c in (status and status.conditions) or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        )

    condition = wait_for(unschedulable, 30, "the scheduler to give up on 5 GPUs")
    assert condition.status == "False"
    assert f"Insufficient {GPU}" in condition.message
    assert client.get(Pod, "too-many", namespace=namespace).status.phase == "Pending"  # type: ignore[union-attr]


def test_a_load_balancer_service_answers_at_its_ingress_address(
    client: Client, namespace: str
) -> None:
    marker = f"lb-{uuid.uuid4().hex}"
    client.create(
        deployment("lb", 2, {"containers": [server_container(marker)]}), namespace=namespace
    )
    service = Service.from_dict(
        {
            "metadata": {"name": "lb"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "lb"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )
    client.create(service, namespace=namespace)
    wait_for(lambda: available(client, "lb", namespace, 2), 60, "2 available replicas")

    def ingress_ip() -> str | None:
        status = client.get(Service, "lb", namespace=namespace).status
        ingress = status and status.loadBalancer and status.loadBalancer.ingress
        return ingress[0].ip if ingress else None

    ip = wait_for(ingress_ip, 30, "an ingress address")
    assert ip.startswith("127.0.200.")
    names = {p.metadata.name for p in pods_of(client, "lb", namespace)}  # type: ignore[union-attr]

    def answered_by_all() -> bool:
        seen = set()
        for _ in range(6):
            try:
                seen.add(httpx.get(f"http://{ip}/", trust_env=False, timeout=5).text)
            except httpx.HTTPError:
                return False
        return seen == names

    wait_for(answered_by_all, 30, "both replicas to answer through the load balancer")


def test_deleting_a_deployment_stops_its_processes(client: Client, namespace: str) -> None:
    marker = f"gone-{uuid.uuid4().hex}"
    client.create(
        deployment("gone", 2, {"containers": [server_container(marker)]}), namespace=namespace
    )
    wait_for(lambda: available(client, "gone", namespace, 2), 60, "2 available replicas")
    pids = marker_pids(marker)
    assert len(pids) == 2

    client.delete(Deployment, "gone", namespace=namespace)
    wait_for(lambda: not marker_pids(marker), 60, "the replicas' processes to stop")
    wait_for(lambda: not pods_of(client, "gone", namespace), 60, "the pods to be deleted")


WRITTEN = """
import json, os, ssl, urllib.request
print("cwd", os.getcwd(), open("staged.txt").read().strip())
print("env", os.environ["MODE"], os.environ["KEY"], os.environ["P_mode"], os.environ["GREETING"])
print("labels", open("/var/kube-harness-test/info/labels").read())
print("secret", open("/var/kube-harness-test/keys/primary").read())
try:
    open("/var/kube-harness-test/keys/new", "w")
except OSError as exc:
    print("read-only", exc.errno)
account = "/var/run/secrets/kubernetes.io/serviceaccount"
tls = ssl.create_default_context(cafile=f"{account}/ca.crt")
url = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
token = open(f"{account}/token").read()
request = urllib.request.Request(f"{url}/version", headers={"Authorization": f"Bearer {token}"})
print("api", json.load(urllib.request.urlopen(request, context=tls))["gitVersion"])
open("/dev/termination-log", "w").write("done")
"""


def test_a_pod_runs_as_its_spec_says(
    client: Client, kube_cluster: KubeCluster, namespace: str
) -> None:
    """Init container, volumes, env sources, $(VAR), workingDir, service account, message."""
    client.create(
        Secret.from_dict({"metadata": {"name": "keys"}, "stringData": {"primary": "s3cret"}}),
        namespace=namespace,
    )
    client.create(
        ConfigMap.from_dict({"metadata": {"name": "cfg"}, "data": {"mode": "fast"}}),
        namespace=namespace,
    )
    scratch = {"name": "scratch", "mountPath": "/var/kube-harness-test/scratch"}
    spec = {
        "restartPolicy": "Never",
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "keys", "secret": {"secretName": "keys"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                },
            },
        ],
        "initContainers": [
            {
                "name": "stage",
                "image": "busybox",
                "command": ["sh", "-c", "cat /var/kube-harness-test/cfg/mode > $(DEST)/staged.txt"],
                "env": [{"name": "DEST", "value": scratch["mountPath"]}],
                "volumeMounts": [
                    scratch,
                    {"name": "cfg", "mountPath": "/var/kube-harness-test/cfg"},
                ],
            }
        ],
        "containers": [
            container(
                "app",
                WRITTEN,
                workingDir=scratch["mountPath"],
                env=[
                    {
                        "name": "MODE",
                        "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}},
                    },
                    {
                        "name": "KEY",
                        "valueFrom": {"secretKeyRef": {"name": "keys", "key": "primary"}},
                    },
                    {"name": "GREETING", "value": "hello $(MODE)"},
                ],
                envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "P_"}],
                volumeMounts=[
                    scratch,
                    {"name": "keys", "mountPath": "/var/kube-harness-test/keys"},
                    {"name": "info", "mountPath": "/var/kube-harness-test/info"},
                ],
            )
        ],
    }
    client.create(
        Pod.from_dict({"metadata": {"name": "written", "labels": {"tier": "a"}}, "spec": spec}),
        namespace=namespace,
    )

    def finished() -> Any:
        status = client.get(Pod, "written", namespace=namespace).status
        return status if status and status.phase in ("Succeeded", "Failed") else None

    status = wait_for(finished, 60, "the pod to finish")
    with kube_cluster.http() as http:
        log = http.get(f"/api/v1/namespaces/{namespace}/pods/written/log").text
    assert status.phase == "Succeeded", log
    (init,) = status.initContainerStatuses
    assert init.state.terminated.reason == "Completed"
    (app,) = status.containerStatuses
    assert app.state.terminated.exitCode == 0
    assert app.state.terminated.message == "done"
    assert f"cwd {scratch['mountPath']} fast" in log
    assert "env fast s3cret fast hello fast" in log
    assert 'labels tier="a"' in log
    assert "secret s3cret" in log
    assert "read-only 30" in log  # EROFS: secret volumes are mounted read-only
    assert "api v1.20.2" in log  # in-cluster access, verifying the API server's certificate


LIVENESS = """
import pathlib, time
alive = pathlib.Path("/var/kube-harness-test/live/alive")
alive.touch()
time.sleep(3)
alive.unlink()
time.sleep(3600)
"""


def test_a_failing_liveness_probe_restarts_the_container(client: Client, namespace: str) -> None:
    spec = {
        "terminationGracePeriodSeconds": 2,
        "volumes": [{"name": "live", "emptyDir": {}}],
        "containers": [
            container(
                "app",
                LIVENESS,
                volumeMounts=[{"name": "live", "mountPath": "/var/kube-harness-test/live"}],
                livenessProbe={
                    "exec": {"command": ["test", "-e", "/var/kube-harness-test/live/alive"]},
                    "initialDelaySeconds": 1,
                    "periodSeconds": 1,
                    "failureThreshold": 2,
                },
            )
        ],
    }
    began = time.monotonic()
    client.create(pod("liveness", spec), namespace=namespace)

    def restarted() -> Any:
        statuses = client.get(Pod, "liveness", namespace=namespace).status.containerStatuses  # type: ignore[union-attr]
        return statuses[0] if statuses and statuses[0].restartCount >= 1 else None

    status = wait_for(restarted, 60, "a restart after the liveness probe failed")
    assert time.monotonic() - began > 4  # alive for 3 s, then 2 failures 1 s apart
    assert status.lastState.terminated.exitCode == 128 + signal.SIGTERM


def test_a_deleted_pod_that_ignores_sigterm_is_killed_after_its_grace_period(
    client: Client, namespace: str
) -> None:
    marker = f"deaf-{uuid.uuid4().hex}"
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
    spec = {"containers": [container("app", deaf, marker)], "terminationGracePeriodSeconds": 2}
    client.create(pod("deaf", spec), namespace=namespace)

    def deaf_running() -> bool:  # running, and past the line that ignores SIGTERM
        pids = marker_pids(marker)
        return bool(pids) and all(_ignores_sigterm(p) for p in pids)

    wait_for(deaf_running, 60, "the pod's process to ignore SIGTERM")

    began = time.monotonic()
    client.delete(Pod, "deaf", namespace=namespace)
    wait_for(lambda: not marker_pids(marker), 30, "the process to be killed")
    assert time.monotonic() - began >= 1.5  # not before the grace period is over

    def deleted() -> bool:
        try:
            client.get(Pod, "deaf", namespace=namespace)
        except ApiError as exc:
            return exc.status.code == 404
        return False

    wait_for(deleted, 30, "the pod to be deleted")


STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
nap = [sys.executable, "-c", "import time; time.sleep(3600)", sys.argv[1]]
subprocess.Popen(nap)  # in the container's process group
subprocess.Popen(["setsid", *nap])  # in a session of its own
time.sleep(3600)
"""


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    """Even a pod that ignores SIGTERM and left its session: all of it goes at stop."""
    cluster = start_cluster(tmp_path / "kube", "--node=solo:cpu=2,memory=4Gi")
    marker = f"stubborn-{uuid.uuid4().hex}"
    try:
        with cluster.client() as client:
            spec = {
                "containers": [container("app", STUBBORN, marker)],
                "terminationGracePeriodSeconds": 2,
            }
            client.create(pod("stubborn", spec), namespace="default")
            wait_for(lambda: len(marker_pids(marker)) == 3, 60, "the pod's three processes")
        pids = marker_pids(marker)
        records = [ProcessRecord.of("pod", pid) for pid in pids] + cluster.processes()
    finally:
        stop_cluster(cluster)
    assert not [r for r in records if r.alive()]
    assert not marker_pids(marker)

    again = json.loads((cluster.dir / "pids.json").read_text())["processes"]
    assert len(again) == 5  # etcd, apiserver, controller-manager, scheduler, node agent
    stop_cluster(cluster)  # a second stop is harmless
