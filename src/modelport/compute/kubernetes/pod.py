"""The pod of one service generation: a staging step, then the replica. Pure, no I/O.

The init container ``stage`` (``python -m modelport.compute.kubernetes.stage``) fetches
the source and model files from the control plane by content hash into the app
folder, copies the replica runtime next to it and builds the environment's
virtualenv into a node-local cache.  The container ``score`` then runs
``python -m modelport.runtime`` in that virtualenv with the variables the local
target sets, so ``score.py`` sees the same paths and settings on both targets.

Probes go to the replica's health port, answered by a thread of its own once
``init()`` has returned: a replica busy in an inline ``run()`` is neither taken out
of rotation nor restarted for it (as on the local target).  Readiness (every
second) gates routing, leaving rotation at a missed probe and coming back after
``success_threshold`` passes; liveness restarts with v1's numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from modelport.compute import layout
from modelport.compute.kubernetes import names
from modelport.compute.kubernetes.release import Release
from modelport.compute.kubernetes.settings import ClusterSettings
from modelport.compute.local.limits import Resources
from modelport.compute.local.probing import ProbeSettings
from modelport.envs.builder import build_key
from modelport.spec.deployment import FIELDS_BY_NAME

APP_ROOT = "/var/azureml-app"  # v1's AML_APP_ROOT in its images
RUNTIME_DIR = "/var/modelport/runtime"  # the replica runtime's copy (PYTHONPATH)
ENV_CACHE = "/var/modelport/envs"  # the node's environment cache, mounted
MODELS_DIR = layout.MODELS_DIR
SCORE_PORT = 5001
HEALTH_PORT = 5002
STAGE_MODULE = "modelport.compute.kubernetes.stage"
TOKEN_KEY = "token"  # the staging Secret's key
MODEL_DATA_KEY = "modeldata"  # its model-data credential, when the service collects
INGEST_PATH = "/api/v1/ingest"  # control/api_ingest.py
READINESS_PERIOD_S = 1
DRAIN_MARGIN_S = 5  # as the local target: a replica drains for the scoring timeout + 5 s

Object = dict[str, Any]


def pod_template(release: Release, cluster: ClusterSettings) -> Object:
    labels = names.generation_labels(cluster.workspace, release.service, release.generation)
    return {"metadata": {"labels": labels}, "spec": pod_spec(release, cluster)}


def pod_spec(release: Release, cluster: ClusterSettings) -> Object:
    spec: Object = {
        "automountServiceAccountToken": False,  # replicas never talk to the API server
        "enableServiceLinks": False,  # no variables of other Services in the user's env
        "terminationGracePeriodSeconds": math.ceil(drain_s(release)) + DRAIN_MARGIN_S,
        "initContainers": [stage_container(release, cluster)],
        "containers": [score_container(release, cluster)],
        "volumes": volumes(release, cluster),
    }
    if cluster.run_as_user is not None:
        spec["securityContext"] = {"fsGroup": cluster.run_as_user}
    return spec


def drain_s(release: Release) -> float:
    return release.plan.scoring_timeout_ms / 1000 + DRAIN_MARGIN_S


def volumes(release: Release, cluster: ClusterSettings) -> list[Object]:
    cache = f"{cluster.env_cache_path.rstrip('/')}/{image_key(cluster.image)}"
    return [
        {"name": "app", "emptyDir": {}},
        {"name": "runtime", "emptyDir": {}},
        {"name": "envs", "hostPath": {"path": cache, "type": "DirectoryOrCreate"}},
    ]


def image_key(image: str) -> str:
    """A virtualenv links its image's interpreter: each image keeps its own cache."""
    return hashlib.sha256(image.encode()).hexdigest()[:16]


def stage_container(release: Release, cluster: ClusterSettings) -> Object:
    return {
        "name": "stage",
        "image": cluster.image,
        "command": ["python", "-m", STAGE_MODULE],
        "env": stage_env(release, cluster),
        "resources": resources(release.plan.resources, 0),
        "volumeMounts": [
            {"name": "app", "mountPath": APP_ROOT},
            {"name": "runtime", "mountPath": RUNTIME_DIR},
            {"name": "envs", "mountPath": ENV_CACHE},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(cluster),
    }


def stage_env(release: Release, cluster: ClusterSettings) -> list[Object]:
    """The staging step's settings (the stage module reads exactly these)."""
    secret = names.staging_secret_name(release.service, release.generation)
    values = {
        "MODELPORT_STAGE_URL": cluster.stage_url,
        "MODELPORT_SERVICE": release.service,
        "MODELPORT_GENERATION": str(release.generation),
        "MODELPORT_APP_ROOT": APP_ROOT,
        "MODELPORT_RUNTIME_DIR": RUNTIME_DIR,
        "MODELPORT_ENV_CACHE": ENV_CACHE,
    }
    if cluster.stage_ca:  # a management API with a private CA (a public certificate)
        values["MODELPORT_STAGE_CA"] = cluster.stage_ca
    if release.environment is not None:
        document = release.environment.to_document(redact=True)
        values["MODELPORT_ENVIRONMENT"] = json.dumps(document, sort_keys=True)
    token = {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}
    return [*env_list(values), {"name": "MODELPORT_STAGE_TOKEN", "valueFrom": token}]


def score_container(release: Release, cluster: ClusterSettings) -> Object:
    return {
        "name": "score",
        "image": cluster.image,
        "command": [python(release), "-m", "modelport.runtime"],
        "args": ["--host", "$(POD_IP)", "--port", str(SCORE_PORT)],
        "ports": [
            {"name": "http", "containerPort": SCORE_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "env": [pod_ip(), *env_list(score_variables(release)), *model_data_env(release, cluster)],
        "resources": resources(release.plan.resources, release.plan.gpu_cores),
        "readinessProbe": readiness_probe(release.plan.probe),
        "livenessProbe": liveness_probe(release.plan.probe),
        "volumeMounts": [
            {"name": "app", "mountPath": APP_ROOT},
            {"name": "runtime", "mountPath": RUNTIME_DIR, "readOnly": True},
            {"name": "envs", "mountPath": ENV_CACHE, "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(cluster),
    }


def model_data_env(release: Release, cluster: ClusterSettings) -> list[Object]:
    """Where the replica's ModelDataCollector sends its rows (rowupload.py): the
    control plane, which appends them to the workspace's model data; none when the
    service does not collect."""
    if not release.plan.collect_model_data:
        return []
    url = f"{cluster.stage_url.rstrip('/')}{INGEST_PATH}/{release.service}/{release.generation}"
    values = {"MODELPORT_MODELDATA_URL": url}
    if cluster.stage_ca:
        values["MODELPORT_MODELDATA_CA"] = cluster.stage_ca
    secret = names.staging_secret_name(release.service, release.generation)
    token = {"secretKeyRef": {"name": secret, "key": MODEL_DATA_KEY}}
    return [*env_list(values), {"name": "MODELPORT_MODELDATA_TOKEN", "valueFrom": token}]


def python(release: Release) -> str:
    """The interpreter of the generation's virtualenv (the stage step builds it there)."""
    if release.environment is None:
        return "python"
    return f"{ENV_CACHE}/{build_key(release.environment)}/bin/python"


def score_variables(release: Release) -> dict[str, str]:
    """The replica's environment, as ``ServiceController._prepare`` sets it locally."""
    env: dict[str, str] = {}
    if release.environment is not None:
        spec = release.environment
        env.update({**spec.conda_variables(), **spec.environment_variables})
    env.update(release.variables)
    model_dir = models_dir(release)
    env.update(
        {
            "AML_APP_ROOT": APP_ROOT,
            "AZUREML_ENTRY_SCRIPT": release.entry_path,
            "AZUREML_SOURCE_DIRECTORY": release.source_basename,
            "AZUREML_MODEL_DIR": model_dir,
            "MODELPORT_MODEL_DIR": model_dir,
            "PYTHONPATH": RUNTIME_DIR,
            "PYTHONUNBUFFERED": "1",
            "MODELPORT_HEALTH_PORT": str(HEALTH_PORT),
            "MODELPORT_DRAIN_S": f"{drain_s(release):g}",
        }
    )
    return env


def models_dir(release: Release) -> str:
    """AZUREML_MODEL_DIR as v1 sets it: the version folder for one model, else all."""
    if len(release.models) == 1:
        name, version = release.models[0]
        return f"{APP_ROOT}/{MODELS_DIR}/{name}/{version}"
    return f"{APP_ROOT}/{MODELS_DIR}"


def pod_ip() -> Object:
    return {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def env_list(values: dict[str, str]) -> list[Object]:
    """Literal values: ``$`` doubled, so Kubernetes expands no ``$(NAME)`` in them."""
    return [{"name": k, "value": v.replace("$", "$$")} for k, v in values.items()]


def resources(res: Resources, gpus: int) -> Object:
    """Requests and limits as v1 on AKS: v1's request defaults apply when none is given."""
    cpu = res.cpu if res.cpu is not None else FIELDS_BY_NAME["cpu_cores"].default
    memory = res.memory_gb if res.memory_gb is not None else FIELDS_BY_NAME["memory_gb"].default
    requests = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
    limits: dict[str, str] = {}
    if res.cpu_limit is not None:
        limits["cpu"] = cpu_quantity(res.cpu_limit)
    if res.memory_gb_limit is not None:
        limits["memory"] = memory_quantity(res.memory_gb_limit)
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def cpu_quantity(cores: float) -> str:
    return f"{max(1, round(cores * 1000))}m"


def memory_quantity(gb: float) -> str:
    """GB as the local target counts them (1024**3 bytes), in MiB."""
    return f"{max(1, round(gb * 1024))}Mi"


def readiness_probe(probe: ProbeSettings) -> Object:
    return {
        "httpGet": {"path": "/", "port": HEALTH_PORT},
        "periodSeconds": READINESS_PERIOD_S,
        "timeoutSeconds": seconds(probe.timeout_s),
        "successThreshold": probe.success_threshold,
        "failureThreshold": 1,
    }


def liveness_probe(probe: ProbeSettings) -> Object:
    return {
        "httpGet": {"path": "/", "port": HEALTH_PORT},
        "initialDelaySeconds": seconds(probe.initial_delay_s),
        "periodSeconds": seconds(probe.period_s),
        "timeoutSeconds": seconds(probe.timeout_s),
        "successThreshold": 1,  # Kubernetes allows no other for liveness
        "failureThreshold": probe.failure_threshold,
    }


def seconds(value: float) -> int:
    return max(1, math.ceil(value))


def security_context(cluster: ClusterSettings) -> Object:
    context: Object = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if cluster.run_as_user is not None:
        context["runAsUser"] = cluster.run_as_user
        context["runAsNonRoot"] = cluster.run_as_user != 0
    return context
