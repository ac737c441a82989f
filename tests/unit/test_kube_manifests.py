"""Kubernetes manifests: every object passes the API's strict schema, numbers as v1 says."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import kubernetes_validate
import pytest

from modelport.compute import layout
from modelport.compute.kubernetes import install, manifests, names, pod, stage
from modelport.compute.kubernetes.permissions import CONTROL_PLANE, ROUTER
from modelport.compute.kubernetes.release import Release
from modelport.compute.kubernetes.settings import POLICY_V1BETA1, ClusterSettings
from modelport.compute.plan import plan, replica_environment
from modelport.envs.builder import build_key
from modelport.spec.environment import EnvironmentSpec, pip_environment_document

VERSION = "1.32.0"
UID = "0b4c6f3e-1d2a-4c5b-9e8f-7a6b5c4d3e2f"
CLUSTER = ClusterSettings(namespace="models", workspace="0123456789ab", stage_url="http://cp:7370")


def validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}") from None


def _spec(dc: dict[str, Any]) -> dict[str, Any]:
    return {
        "deploymentConfig": {"computeType": "aks", **dc},
        "inferenceConfig": {"entryScript": "score.py"},
        "models": ["model:1"],
    }


AKS = {
    "containerResourceRequirements": {
        "cpu": 0.5,
        "memoryInGB": 2,
        "cpuLimit": 1,
        "memoryInGBLimit": 4,
    },
    "gpuCores": 2,
    "numReplicas": 3,
    "scoringTimeoutMs": 3000,
    "maxConcurrentRequestsPerContainer": 2,
    "livenessProbeRequirements": {
        "periodSeconds": 7,
        "initialDelaySeconds": 45,
        "timeoutSeconds": 3,
        "successThreshold": 2,
        "failureThreshold": 5,
    },
}


def _release(
    dc: dict[str, Any] | None = None,
    service: str = "iris",
    generation: int = 4,
    environment: EnvironmentSpec | None = None,
    models: tuple[tuple[str, int], ...] = (("model", 1),),
) -> Release:
    the_plan = plan(_spec(AKS if dc is None else dc))
    return Release(
        service=service,
        generation=generation,
        plan=the_plan,
        entry_script="score.py",
        source_basename="src",
        models=models,
        variables=replica_environment(the_plan, service),
        environment=environment,
    )


def _environment() -> EnvironmentSpec:
    doc = pip_environment_document("sklearn-env", "scikit-learn==1.5.2\n")
    doc["environmentVariables"] = {"GREETING": "cost $(HOME) $5"}
    return EnvironmentSpec.model_validate(doc)


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"]
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- every object passes the strict schema --------------------------------------------
def test_generation_objects_pass_the_strict_schema() -> None:
    for release in (_release(), _release({}, environment=_environment())):
        objects = manifests.generation_objects(release, CLUSTER, UID, "a.b.c")
        assert [o["kind"] for o in objects] == [
            "Secret",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Deployment",
        ]
        for obj in objects:
            validate(obj)


def test_service_config_map_passes_and_holds_the_route_policy() -> None:
    release = _release()
    cm = manifests.service_config_map(CLUSTER, "iris", release.plan, ["d1", "d2"], 4)
    validate(cm)
    assert json.loads(cm["data"][manifests.ROUTE_KEY]) == {
        "auth": True,
        "tokenAuth": False,
        "keyDigests": ["d1", "d2"],
        "maxConcurrent": 2,
        "batching": False,
        "maxWaitMs": 500,
        "maxQueue": 100,
        "pipelining": True,
        "scoringTimeoutMs": 3000,
        "generation": 4,
    }
    assert cm["metadata"]["name"] == "iris"
    assert cm["metadata"]["labels"] == {
        names.MANAGED_BY: "modelport",
        names.WORKSPACE: CLUSTER.workspace,
        names.SERVICE: "iris",
    }


def test_install_objects_pass_the_strict_schema() -> None:
    objects = install.install_objects(CLUSTER, "router-token")
    for obj in objects:
        validate(obj)
    kinds = [o["kind"] for o in objects]
    assert kinds == [
        "Namespace",
        "Role",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
        "Deployment",
        "Service",
    ]


def test_the_routers_send_what_they_capture_to_the_control_plane() -> None:
    private = dataclasses.replace(CLUSTER, stage_ca="PEM")
    objects = install.install_objects(
        private, "router-token", None, install.Reporting("myaks", "capture-t")
    )
    for obj in objects:
        validate(obj)
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["stringData"] == {"token": "router-token", "capture": "capture-t"}
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    env = _env(_container(deployment, "router"))
    assert env["MODELPORT_CAPTURE_URL"] == "http://cp:7370/api/v1/ingest/_routers/myaks"
    assert env["MODELPORT_CAPTURE_CA"] == "PEM"
    assert env["MODELPORT_CAPTURE_TOKEN"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "capture", "optional": True}
    }
    assert "MODELPORT_CAPTURE_TOKEN" not in _env(_container(deployment, "route-sync"))
    plain = install.install_objects(CLUSTER, "router-token")
    assert not [k for k in _env(_container(plain[-2], "router")) if k.startswith("MODELPORT_CAP")]


def test_the_routers_send_spans_where_the_control_plane_does() -> None:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    objects = install.install_objects(CLUSTER, "t", None, install.Reporting("myaks", None, otel))
    env = _env(_container(objects[-2], "router"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in _env(_container(objects[-2], "route-sync"))


def test_a_tls_secret_is_mounted_for_the_router_and_named_https_on_the_service() -> None:
    objects = install.install_objects(CLUSTER, "router-token", tls_secret="router-tls")
    for obj in objects:
        validate(obj)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert install.tls_secret_of(deployment) == "router-tls"
    router = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in router["env"]}
    assert env["MODELPORT_ROUTER_TLS_CERT"] == f"{install.TLS_DIR}/tls.crt"
    assert env["MODELPORT_ROUTER_TLS_KEY"] == f"{install.TLS_DIR}/tls.key"
    assert {"name": "tls", "mountPath": install.TLS_DIR, "readOnly": True} in router["volumeMounts"]
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["ports"][0] | {"protocol": "TCP"} == {
        "name": "https",
        "port": 443,
        "targetPort": "http",
        "protocol": "TCP",
    }
    plain = install.install_objects(CLUSTER, "router-token")
    assert install.tls_secret_of(next(o for o in plain if o["kind"] == "Deployment")) is None
    assert not any("TLS" in str(o) for o in plain if o["kind"] == "Deployment")


def test_the_staging_step_trusts_the_management_apis_private_ca() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n"
    private = dataclasses.replace(CLUSTER, stage_url="https://cp:7370", stage_ca=pem)
    deployment = manifests.generation_objects(_release(), private, UID, "a.b.c")[-1]
    env = _env(_container(deployment, "stage"))
    assert env["MODELPORT_STAGE_CA"] == pem
    settings = stage.Settings.from_env(
        {k: str(v) for k, v in env.items()} | {"MODELPORT_STAGE_TOKEN": "t"}
    )
    assert settings.ca == pem and settings.url == "https://cp:7370"
    plain = manifests.generation_objects(_release(), CLUSTER, UID, "a.b.c")[-1]
    assert "MODELPORT_STAGE_CA" not in _env(_container(plain, "stage"))


def test_policy_v1beta1_budget_differs_from_v1_only_in_api_version() -> None:
    """The v1beta1 schema is not bundled (Kubernetes 1.25 removed it); the object is the
    v1 one with another apiVersion, and both versions have the same fields here."""
    release = _release()
    old = manifests.disruption_budget(
        release, ClusterSettings(**{**CLUSTER.__dict__, "pdb_api_version": POLICY_V1BETA1}), UID
    )
    new = manifests.disruption_budget(release, CLUSTER, UID)
    assert old["apiVersion"] == "policy/v1beta1"
    assert {**old, "apiVersion": "policy/v1"} == new
    assert set(new["spec"]) == {"maxUnavailable", "selector"}  # both versions have these
    validate(new)


# -- the numbers -------------------------------------------------------------------------
def test_resources_follow_the_deployment_config() -> None:
    score = _container(manifests.deployment(_release(), CLUSTER, UID), "score")
    assert score["resources"] == {
        "requests": {"cpu": "500m", "memory": "2048Mi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "1000m", "memory": "4096Mi", "nvidia.com/gpu": "2"},
    }


def test_unset_resources_request_v1_defaults_and_set_no_limits() -> None:
    deployment = manifests.deployment(_release({}), CLUSTER, UID)
    assert _container(deployment, "score")["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"}
    }
    assert _container(deployment, "stage")["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"}
    }


def test_the_staging_step_asks_for_no_gpu() -> None:
    stage = _container(manifests.deployment(_release(), CLUSTER, UID), "stage")
    assert "nvidia.com/gpu" not in stage["resources"]["requests"]
    assert "nvidia.com/gpu" not in stage["resources"].get("limits", {})


def test_gpu_cores_reach_the_plan() -> None:
    assert plan(_spec({"gpuCores": 3})).gpu_cores == 3
    assert plan(_spec({})).gpu_cores == 0


def test_probes_carry_the_v1_numbers() -> None:
    score = _container(manifests.deployment(_release(), CLUSTER, UID), "score")
    assert score["livenessProbe"] == {
        "httpGet": {"path": "/", "port": pod.HEALTH_PORT},
        "initialDelaySeconds": 45,
        "periodSeconds": 7,
        "timeoutSeconds": 3,
        "successThreshold": 1,
        "failureThreshold": 5,
    }
    assert score["readinessProbe"] == {
        "httpGet": {"path": "/", "port": pod.HEALTH_PORT},
        "periodSeconds": 1,
        "timeoutSeconds": 3,
        "successThreshold": 2,
        "failureThreshold": 1,
    }


def test_probes_default_to_v1s_defaults() -> None:
    score = _container(manifests.deployment(_release({}), CLUSTER, UID), "score")
    live = score["livenessProbe"]
    assert (live["initialDelaySeconds"], live["periodSeconds"], live["timeoutSeconds"]) == (
        310,
        10,
        2,
    )
    assert live["failureThreshold"] == 3


def test_replicas_and_selector() -> None:
    deployment = manifests.deployment(_release(), CLUSTER, UID)
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {names.SERVICE: "iris", names.GENERATION: "4"}}
    template_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= template_labels.items()
    assert template_labels[names.WORKSPACE] == CLUSTER.workspace
    service = manifests.headless_service(_release(), CLUSTER, UID)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    budget = manifests.disruption_budget(_release(), CLUSTER, UID)
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}


def test_autoscaled_services_start_at_their_minimum() -> None:
    release = _release({"autoScaler": {"autoscaleEnabled": True, "minReplicas": 2}})
    assert manifests.deployment(release, CLUSTER, UID)["spec"]["replicas"] == 2


# -- labels and owners -------------------------------------------------------------------
def test_generation_objects_are_labelled_and_owned_by_the_service_config_map() -> None:
    for obj in manifests.generation_objects(_release(), CLUSTER, UID, "t"):
        meta = obj["metadata"]
        assert meta["namespace"] == "models"
        assert meta["labels"] == {
            names.MANAGED_BY: "modelport",
            names.WORKSPACE: CLUSTER.workspace,
            names.SERVICE: "iris",
            names.GENERATION: "4",
        }
        assert meta["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "iris", "uid": UID}
        ]


def test_install_objects_are_labelled_with_the_workspace() -> None:
    for obj in install.install_objects(CLUSTER, "t"):
        labels = obj["metadata"]["labels"]
        assert labels[names.MANAGED_BY] == "modelport"
        assert labels[names.WORKSPACE] == CLUSTER.workspace


# -- the pod -----------------------------------------------------------------------------
def test_the_replica_gets_the_local_targets_variables() -> None:
    release = _release()
    score = _container(manifests.deployment(release, CLUSTER, UID), "score")
    env = _env(score)
    assert score["command"] == ["python", "-m", "modelport.runtime"]
    assert score["args"] == ["--host", "$(POD_IP)", "--port", "5001"]
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert score["env"][0]["name"] == "POD_IP"
    for key, value in replica_environment(release.plan, "iris").items():
        assert env[key] == value
    assert env["AML_APP_ROOT"] == "/var/azureml-app"
    assert env["AZUREML_ENTRY_SCRIPT"] == "src/score.py"
    assert env["AZUREML_SOURCE_DIRECTORY"] == "src"
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/model/1"
    assert env["MODELPORT_MODEL_DIR"] == env["AZUREML_MODEL_DIR"]
    assert env["PYTHONPATH"] == pod.RUNTIME_DIR
    assert env["MODELPORT_HEALTH_PORT"] == "5002"
    assert env["MODELPORT_DRAIN_S"] == "8"
    assert score["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert (
        manifests.deployment(release, CLUSTER, UID)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        == 13
    )


def test_several_models_share_the_models_folder() -> None:
    release = _release(models=(("a", 1), ("b", 2)))
    env = _env(_container(manifests.deployment(release, CLUSTER, UID), "score"))
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models"


def test_pod_folders_match_the_local_layout() -> None:
    assert pod.MODELS_DIR == layout.MODELS_DIR


def test_an_environment_runs_the_replica_in_its_virtualenv() -> None:
    env_spec = _environment()
    release = _release(environment=env_spec)
    deployment = manifests.deployment(release, CLUSTER, UID)
    score, stage = _container(deployment, "score"), _container(deployment, "stage")
    assert score["command"][0] == f"{pod.ENV_CACHE}/{build_key(env_spec)}/bin/python"
    # environment variables are literal: Kubernetes must expand no $(HOME)
    assert _env(score)["GREETING"] == "cost $$(HOME) $$5"
    assert deployment["metadata"]["annotations"] == {names.ENVIRONMENT: env_spec.content_hash()}
    stage_env = _env(stage)
    document = json.loads(stage_env["MODELPORT_ENVIRONMENT"].replace("$$", "$"))
    assert EnvironmentSpec.model_validate(document).content_hash() == env_spec.content_hash()


def test_the_staging_step_reads_its_credential_from_the_generations_secret() -> None:
    release = _release()
    deployment = manifests.deployment(release, CLUSTER, UID)
    stage = _container(deployment, "stage")
    assert stage["command"] == ["python", "-m", "modelport.compute.kubernetes.stage"]
    env = _env(stage)
    secret = manifests.staging_secret(release, CLUSTER, UID, "the-token")
    assert env["MODELPORT_STAGE_TOKEN"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "token"}
    }
    assert secret["stringData"] == {"token": "the-token"}
    assert env["MODELPORT_STAGE_URL"] == "http://cp:7370"
    assert (env["MODELPORT_SERVICE"], env["MODELPORT_GENERATION"]) == ("iris", "4")
    assert "MODELPORT_ENVIRONMENT" not in env
    mounts = {m["name"]: m["mountPath"] for m in stage["volumeMounts"]}
    assert mounts == {"app": "/var/azureml-app", "runtime": pod.RUNTIME_DIR, "envs": pod.ENV_CACHE}
    assert env["MODELPORT_APP_ROOT"] == mounts["app"]
    assert env["MODELPORT_RUNTIME_DIR"] == mounts["runtime"]
    assert env["MODELPORT_ENV_CACHE"] == mounts["envs"]


def test_a_collecting_replica_sends_its_rows_to_the_control_plane() -> None:
    collecting = _release({**AKS, "dataCollection": {"storageEnabled": True}})
    score = _env(_container(manifests.deployment(collecting, CLUSTER, UID), "score"))
    secret = manifests.staging_secret(collecting, CLUSTER, UID, "stage-t", "data-t")
    assert secret["stringData"] == {"token": "stage-t", "modeldata": "data-t"}
    assert score["MODELPORT_MODELDATA_URL"] == "http://cp:7370/api/v1/ingest/iris/4"
    assert score["MODELPORT_MODELDATA_TOKEN"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "modeldata"}
    }
    assert score["AML_MODEL_DC_STORAGE_ENABLED"] == "true"
    assert "MODELPORT_STAGE_TOKEN" not in score  # the staging credential stays with staging
    quiet = _env(_container(manifests.deployment(_release(), CLUSTER, UID), "score"))
    assert not [k for k in quiet if k.startswith("MODELPORT_MODELDATA")]
    assert quiet["AML_MODEL_DC_STORAGE_ENABLED"] == "false"


def test_the_environment_cache_is_a_node_folder_per_image() -> None:
    volumes = manifests.deployment(_release(), CLUSTER, UID)["spec"]["template"]["spec"]["volumes"]
    cache = next(v for v in volumes if v["name"] == "envs")["hostPath"]
    other = ClusterSettings(**{**CLUSTER.__dict__, "image": "registry.local/runtime:2"})
    volumes2 = manifests.deployment(_release(), other, UID)["spec"]["template"]["spec"]["volumes"]
    cache2 = next(v for v in volumes2 if v["name"] == "envs")["hostPath"]
    assert cache["type"] == "DirectoryOrCreate"
    assert cache["path"].startswith("/var/cache/modelport/envs/")
    assert cache["path"] != cache2["path"]


def test_containers_cannot_gain_privileges() -> None:
    deployment = manifests.deployment(_release(), CLUSTER, UID)
    router = install.router_deployment(CLUSTER)
    for obj, name in (
        (deployment, "stage"),
        (deployment, "score"),
        (router, "router"),
        (router, "route-sync"),
    ):
        context = _container(obj, name)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


def test_a_run_as_user_is_set_on_every_container() -> None:
    cluster = ClusterSettings(**{**CLUSTER.__dict__, "run_as_user": 1000})
    deployment = manifests.deployment(_release(), cluster, UID)
    validate(deployment)
    assert deployment["spec"]["template"]["spec"]["securityContext"] == {"fsGroup": 1000}
    context = _container(deployment, "score")["securityContext"]
    assert (context["runAsUser"], context["runAsNonRoot"]) == (1000, True)


# -- names ---------------------------------------------------------------------------------
def test_generation_names() -> None:
    assert names.generation_name("iris", 4) == "iris-4"
    assert names.staging_secret_name("iris", 4) == "iris-4-stage"


def test_long_names_are_cut_deterministically_and_stay_distinct() -> None:
    service = "s" + "x" * 31  # the longest v1 name
    long_a = names.generation_name(service, 10**30)
    long_b = names.generation_name(service, 10**30 + 1)
    assert len(long_a) == len(long_b) == 63
    assert long_a != long_b
    assert long_a == names.generation_name(service, 10**30)
    assert long_a.startswith(service)
    assert names.dns_label("a" * 63) == "a" * 63
    cut = names.dns_label("a" * 52 + "-" + "b" * 20)
    assert len(cut) <= 63 and not cut[:-11].endswith("-")
    assert names.staging_secret_name(service, 2**63 - 1) == f"{service}-{2**63 - 1}-stage"


def test_a_cut_name_is_still_valid() -> None:
    release = _release(service="s" + "x" * 31, generation=10**40)
    for obj in manifests.generation_objects(release, CLUSTER, UID, "t"):
        assert len(obj["metadata"]["name"]) <= 63
        validate(obj)


# -- the router and the roles ----------------------------------------------------------------
def test_roles_come_from_the_permission_table() -> None:
    router_role = install.router_role(CLUSTER)
    assert router_role["rules"] == [
        {"apiGroups": [p.group], "resources": [p.resource], "verbs": list(p.verbs)} for p in ROUTER
    ]
    control = install.control_plane_role(CLUSTER)
    assert len(control["rules"]) == len(CONTROL_PLANE)
    assert {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch", "update"],
    } in control["rules"]
    binding = install.router_role_binding(CLUSTER)
    assert binding["roleRef"]["name"] == router_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": names.ROUTER, "namespace": "models"}
    ]


def test_the_router_pod_runs_the_router_beside_route_sync() -> None:
    deployment = install.router_deployment(CLUSTER)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == names.ROUTER
    router = _container(deployment, "router")
    sync = _container(deployment, "route-sync")
    assert router["command"] == ["python", "-m", "modelport.compute.kubernetes.launch"]
    assert sync["command"] == ["python", "-m", "modelport.compute.kubernetes.routes"]
    router_env, sync_env = _env(router), _env(sync)
    assert router_env["MODELPORT_ROUTER_HOST"] == "$(POD_IP)"
    assert router_env["MODELPORT_ROUTER_TOKEN"] == sync_env["MODELPORT_ROUTER_TOKEN"]
    assert sync_env["MODELPORT_ROUTER_ADMIN_URL"] == "http://$(POD_IP):8081"
    assert sync_env["MODELPORT_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # a variable is defined before another refers to it
    for container in (router, sync):
        assert container["env"][0]["name"] == "POD_IP"
    service = install.router_service(CLUSTER)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_objects_are_plain_data() -> None:
    objects = manifests.generation_objects(_release(environment=_environment()), CLUSTER, UID, "t")
    assert copy.deepcopy(objects) == objects
    assert json.loads(json.dumps(objects)) == objects


@pytest.mark.parametrize("service", ["abc", "a" * 32, "a-b-c"])
def test_every_service_name_makes_valid_objects(service: str) -> None:
    cm = manifests.service_config_map(CLUSTER, service, _release().plan, [], 1)
    validate(cm)
    for obj in manifests.generation_objects(_release(service=service), CLUSTER, UID, "t"):
        validate(obj)


def test_only_the_router_pods_reach_a_replicas_scoring_port() -> None:
    release = _release()
    fence = manifests.network_policy(release, CLUSTER, UID)
    validate(fence)
    spec = fence["spec"]
    selector = names.generation_selector(release.service, release.generation)
    assert spec["podSelector"] == {"matchLabels": selector}
    assert spec["policyTypes"] == ["Ingress"]
    scoring, probes = spec["ingress"]
    assert scoring == {
        "from": [{"podSelector": {"matchLabels": names.router_selector(CLUSTER.workspace)}}],
        "ports": [{"protocol": "TCP", "port": pod.SCORE_PORT}],
    }
    assert "from" not in probes  # the kubelet probes from the node
    assert probes["ports"] == [{"protocol": "TCP", "port": pod.HEALTH_PORT}]
