"""The service lifecycle, the same tests over every compute target.

``local`` runs replicas as processes of this machine; ``kubernetes`` deploys to the
test cluster (a real API server, controller manager and scheduler, and a node agent
that runs the pods as processes): attached, installed, then used exactly as ``local``
through the SDK.  What differs is only how a replica is killed and how leftovers are
found.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret, Service

from modelport import AksCompute, AksEndpoint, AksWebservice, Model, Webservice, Workspace
from modelport.errors import InvalidInputError, NotFoundError
from tests.conftest import ServerProcess, alive, descendants, wait_for
from tests.e2e.clusters import attached
from tests.e2e.test_batching import four_in_one_call
from tests.e2e.test_data_plane import Load
from tests.e2e.test_services import fixed, post, source

PDB = create_namespaced_resource("policy", "v1beta1", "PodDisruptionBudget", "poddisruptionbudgets")


@dataclass
class Where:
    """A compute target as the tests use it."""

    kind: str
    server: ServerProcess
    target: AksCompute | None = None
    cluster: Any = None
    namespace: str = ""
    client: Client | None = None
    restarted: list[ServerProcess] = field(default_factory=list)

    def deploy(self, ws: Workspace, name: str, model: Model, ic: Any, config: Any) -> Webservice:
        return Model.deploy(ws, name, [model], ic, config, deployment_target=self.target)

    def replicas(self, ws: Workspace, name: str) -> list[str]:
        """Who serves: process ids here, pod names on a cluster."""
        if self.client is None:
            return sorted(str(r["pid"]) for r in Webservice(ws, name).serialize()["replicas"])
        pods = self.client.list(
            Pod, namespace=self.namespace, labels={"modelport.io/service": name}
        )
        return sorted(p.metadata.name for p in pods if not p.metadata.deletionTimestamp)

    def kill_replica(self, ws: Workspace, name: str) -> str:
        victim = self.replicas(ws, name)[0]
        if self.client is None:
            os.kill(int(victim), signal.SIGKILL)
        else:
            self.client.delete(Pod, victim, namespace=self.namespace, grace_period=0)
        return victim

    def leftovers(self, name: str) -> list[str]:
        if self.client is None:
            folder = self.server.home / "services" / name
            return [str(folder)] if folder.exists() else []
        labels = {"modelport.io/service": name}
        found = []
        for kind in (Deployment, Service, ConfigMap, Secret, Pod, PDB):
            for obj in self.client.list(kind, namespace=self.namespace, labels=labels):
                found.append(f"{kind.__name__}/{obj.metadata.name}")
        try:
            self.client.get(ConfigMap, name, namespace=self.namespace)
            found.append(f"ConfigMap/{name}")
        except Exception:
            pass
        return found


@pytest.fixture(params=["local", "kubernetes"])
def where(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Where]:
    if request.param == "local":
        yield Where("local", server)
        return
    cluster = request.getfixturevalue("kube_cluster")
    with attached(server, cluster) as found:
        yield Where("kubernetes", server, found.target, cluster, found.namespace, found.client)


def test_deploy_score_update_under_load_and_delete(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = where.deploy(ws, "life", model, source(tmp_path), fixed(2))
    service.wait_for_deployment()
    assert service.state == "Healthy" and service.compute_type == "AKS"
    assert service.run({"x": [1, 2]})["y"] == [10, 20]
    primary, secondary = service.get_keys()
    assert post(service, {"x": [1]}, secondary).status_code == 200
    assert post(service, {"x": [1]}).status_code == 401
    load = Load(service.scoring_uri, primary)
    try:
        load.wait_more(20, "traffic before the update")
        service.update(inference_config=source(tmp_path, version="2", name="v2"))
        service.wait_for_deployment()
        load.wait_more(20, "traffic after the update")
    finally:
        results = load.stop()
    assert results and set(results) == {200}, sorted({str(r) for r in results})
    assert service.run({"x": [1]})["version"] == "2"
    assert "calling init()" in service.get_logs()
    service.delete()
    with pytest.raises(NotFoundError):
        Webservice(ws, "life")
    wait_for(lambda: not where.leftovers("life"), timeout_s=60, what="nothing left of the service")


def test_a_killed_replica_is_replaced(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = where.deploy(ws, "phoenix", model, source(tmp_path), fixed(2))
    service.wait_for_deployment()
    victim = where.kill_replica(ws, "phoenix")

    def recovered() -> bool:
        now = where.replicas(ws, "phoenix")
        again = Webservice(ws, "phoenix")
        ready = [r for r in again.serialize()["replicas"] if r["state"] == "Ready"]
        return victim not in now and len(ready) == 2 and again.state == "Healthy"

    wait_for(recovered, timeout_s=60, what="the killed replica to be replaced")
    assert service.run({"x": [3]})["y"] == [30]
    service.delete()


def test_serving_goes_on_while_the_control_plane_restarts(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = where.deploy(ws, "durable", model, source(tmp_path), fixed(2))
    service.wait_for_deployment()
    key = service.get_keys()[0]
    serving = where.replicas(ws, "durable")
    server = where.server
    family = descendants(server.proc.pid)
    load = Load(service.scoring_uri, key)
    try:
        load.wait_more(20, "traffic to flow")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        load.wait_more(50, "answers while the control plane is down")
        restarted = ServerProcess(server.home, router_port=None)
        where.restarted.append(restarted)
        with Workspace.from_config(server.home) as again_ws:
            again = Webservice(again_ws, "durable")
            assert again.state == "Healthy"
            assert where.replicas(again_ws, "durable") == serving  # adopted, not replaced
            load.wait_more(50, "answers after the restart")
            results = load.stop()
            assert results and set(results) == {200}, (
                sorted({str(r) for r in results}),
                load.refusals,
            )
            again.delete()
    finally:
        load.stop()
        for proc in where.restarted:
            proc.stop()
    wait_for(lambda: not any(alive(p) for p in family), what="the old server's processes to end")


def test_a_service_needing_more_gpus_than_there_are_reads_unschedulable_with_why(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Within seconds, in the words of whatever places replicas: this machine's GPU
    inventory, or the cluster's scheduler (its GPU node has 4)."""
    Model.deploy(ws, "greedy", [model], source(tmp_path), fixed(1, gpu_cores=64), where.target)

    def unschedulable() -> Webservice | None:
        found = Webservice(ws, "greedy")
        return found if found.state == "Unschedulable" else None

    service = wait_for(unschedulable, timeout_s=30, what="the service to read Unschedulable")
    reason = "Insufficient nvidia.com/gpu" if where.client else "not enough GPUs"
    assert service.error is not None and reason in str(service.error)
    service.delete()
    wait_for(lambda: not where.leftovers("greedy"), timeout_s=60, what="nothing left")


def test_autoscaling_goes_up_under_load_and_back_down(
    where: Where, ws: Workspace, model: Model, tmp_path: Path, exchange: Path
) -> None:
    config = AksWebservice.deploy_configuration(
        autoscale_enabled=True,
        autoscale_min_replicas=1,
        autoscale_max_replicas=4,
        autoscale_target_utilization=50,
        autoscale_refresh_seconds=1,
        autoscale_scale_down_window_seconds=3,
    )
    service = where.deploy(ws, "elastic", model, source(tmp_path), config)
    service.wait_for_deployment()
    key = service.get_keys()[0]

    def ready() -> int:
        replicas = Webservice(ws, "elastic").serialize()["replicas"]
        return len([r for r in replicas if r["state"] == "Ready"])

    assert ready() == 1
    # One request that stays busy until the test lets it go: utilization 100 %.
    # A local replica's sandbox lets it write to the exchange folder, not to tmp_path.
    holder = _hold(service, key, (exchange if where.client is None else tmp_path) / "hold")
    try:
        wait_for(lambda: ready() >= 2, timeout_s=60, what="a scale-up under load")
    finally:
        holder.unlink(missing_ok=True)
    wait_for(lambda: ready() == 1, timeout_s=90, what="the scale-down after the window")

    def events() -> list[dict[str, int]]:
        return ws.client.call("GET", "/api/v1/services/elastic/events")["value"]

    assert any(e["toReplicas"] > e["fromReplicas"] for e in events())
    # The replica leaves the moment the decision is made; its event is stored just after.
    wait_for(
        lambda: any(e["toReplicas"] < e["fromReplicas"] for e in events()),
        timeout_s=10,
        what="the scale-down's event",
    )
    service.delete()


def test_a_batched_run_gets_whole_batches_from_every_router(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """@batched(4) on a cap-1 service: four requests at once are one call of run(), three
    rounds over, through this machine's router and through the cluster's three router
    pods (each may hand the replica a whole batch: see compute/shares.py)."""
    four_in_one_call(ws, model, tmp_path, where.target, rounds=3)


def _hold(service: Webservice, key: str, path: Path) -> Path:
    """Send a request that runs until ``path`` is removed; returns ``path``."""
    headers = {"Authorization": f"Bearer {key}"}

    def send() -> None:
        httpx.post(service.scoring_uri, json={"hold": str(path)}, headers=headers, timeout=120)

    threading.Thread(target=send, daemon=True).start()
    wait_for(path.exists, timeout_s=30, what="the held request to start")
    return path


def test_an_endpoint_splits_here_and_a_cluster_refuses_it_with_the_reason(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """Endpoints run on this machine in this release: the same deploy splits traffic on
    the local target, and on a cluster is refused saying so (never half taken)."""
    config = AksEndpoint.deploy_configuration(
        version_name="first", num_replicas=1, autoscale_enabled=False
    )
    if where.client is not None:
        with pytest.raises(InvalidInputError, match="endpoints run on this machine's compute"):
            where.deploy(ws, "split", model, source(tmp_path), config)
        with pytest.raises(NotFoundError):
            AksEndpoint(ws, "split")
        return
    endpoint = where.deploy(ws, "split", model, source(tmp_path), config)
    assert isinstance(endpoint, AksEndpoint)
    endpoint.create_version(
        "second",
        models=[model],
        inference_config=source(tmp_path),
        num_replicas=1,
        traffic_percentile=50,
    )
    endpoint.wait_for_deployment()
    key = endpoint.get_keys()[0]
    with httpx.Client(timeout=30) as client:
        answered = [
            client.post(
                endpoint.scoring_uri, json={"x": [1]}, headers={"Authorization": f"Bearer {key}"}
            ).headers["azureml-model-deployment"]
            for _ in range(10)
        ]
    assert sorted(answered) == ["first"] * 5 + ["second"] * 5
    endpoint.delete()


def test_token_auth_takes_tokens_only_and_a_rotated_key_reaches_the_routers(
    where: Where, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    """The routers (this machine's, or a cluster's router pods) take tokens for the
    service only, and take a new signing key at once while the old one still verifies."""
    service = where.deploy(ws, "tokens", model, source(tmp_path), fixed(1, token_auth_enabled=True))
    service.wait_for_deployment()
    assert service.run({"x": [1]})["y"] == [10]
    token = service.get_access_token().access_token
    assert post(service, {"x": [1]}, token).status_code == 200
    assert post(service, {"x": [1]}).status_code == 401
    refused = post(service, {"x": [1]}, token[:-4] + "AAAA")
    assert (
        refused.status_code == 401
        and 'error="invalid_token"' in refused.headers["www-authenticate"]
    )
    with pytest.raises(InvalidInputError, match="uses token authentication"):
        service.get_keys()
    # A rotation reaches the routers: the new key's tokens are taken at once.
    ws.client.call("POST", "/api/v1/tokens/rotate-key")
    fresh = service.get_access_token().access_token
    wait_for(
        lambda: post(service, {"x": [1]}, fresh).status_code == 200,
        what="the routers to take the new signing key",
    )
    assert post(service, {"x": [1]}, token).status_code == 200  # the old key still verifies
    service.delete()
