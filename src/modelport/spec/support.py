"""What this release does with each v1 setting on the local target: pure, no I/O.

A setting modelport takes either does what v1 does, or is refused here (a v1
feature that does not exist yet, which a user must not believe is on), or comes
with a warning that names what is not enforced on this target and why.  The same
lists are shown by ``modelport validate``, returned by a deploy and kept in the
service's view.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelport.spec.deployment import (
    AciServiceDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
)
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.inference import InferenceConfigSpec
from modelport.tracing import NOT_EXPORTED


@dataclass(frozen=True)
class Target:
    """What the compute target can enforce."""

    name: str = "local"
    cgroups: str | None = None  # why CPU and memory cannot be enforced here, if they cannot
    namespace: str | None = None  # a cluster's: where its services go
    gpus: bool = False  # GPUs are assigned to replicas (gpu_cores is enforced)
    traces: str | None = NOT_EXPORTED  # why spans are not exported here; None: they are

    @property
    def cluster(self) -> bool:
        return self.namespace is not None


def refusals(config: DeploymentConfiguration) -> list[str]:
    """Settings whose v1 behaviour does not exist yet: a deploy with them is refused."""
    # None in this release: token auth and TLS exist now (``tls_refusal`` depends on the
    # server).  A v1 feature still missing would be refused here, before any work.
    del config
    return []


def tls_refusal(config: DeploymentConfiguration, tls: bool) -> str | None:
    """v1's ``sslEnabled`` asks for an https scoring URI: there only when the server
    (``tls``) terminates TLS for the service's target."""
    if not isinstance(config, AciServiceDeploymentConfiguration) or not config.ssl_enabled:
        return None
    if tls:
        return None
    return (
        "sslEnabled: TLS is not served for this service's target: start the server with "
        "`modelport up --tls self-signed` (or --tls-cert FILE --tls-key FILE), whose "
        "certificate then serves every scoring URI over https"
    )


SSL_WARNING = (
    "sslEnabled: the scoring URI is https with the server's own certificate "
    "(`modelport up --tls ...`); this service's sslCertificate, sslKey and cname are not used"
)

_ACI_ONLY = {
    "location": "location",
    "dns_name_label": "dnsNameLabel",
    "cmk_vault_base_url": "vaultBaseUrl",
    "cmk_key_name": "keyName",
    "cmk_key_version": "keyVersion",
    "vnet_name": "vnetName",
    "subnet_name": "subnetName",
}


def _aci_warnings(config: AciServiceDeploymentConfiguration, target: Target) -> list[str]:
    out = [
        f"computeType ACI: runs on the {target.name} target as a single-replica service "
        "behind the router"
    ]
    for name, key in _ACI_ONLY.items():
        if getattr(config, name) is not None:
            out.append(f"{key}: an Azure setting with no meaning on the {target.name} target")
    if config.ssl_enabled:
        out.append(SSL_WARNING)
    return out


def deployment_warnings(config: DeploymentConfiguration, target: Target) -> list[str]:
    """Settings taken but not enforced on ``target``, each with what happens instead."""
    if isinstance(config, AciServiceDeploymentConfiguration):
        out = _aci_warnings(config, target)
    elif isinstance(config, AksServiceDeploymentConfiguration):
        out = _aks_warnings(config, target)
    else:
        return []
    if config.enable_app_insights and target.traces:
        out.append(f"appInsightsEnabled: no traces are sent: {target.traces}; {LOGS_AND_METRICS}")
    given = config.given()
    resources = [
        k for k in ("cpu_cores", "cpu_cores_limit", "memory_gb", "memory_gb_limit") if k in given
    ]
    if resources and target.cgroups:
        out.append(f"{', '.join(resources)}: not enforced: {target.cgroups}")
    return out


def _aks_warnings(config: AksServiceDeploymentConfiguration, target: Target) -> list[str]:
    out = []
    if config.gpu_cores and not target.gpus:
        out.append(
            f"gpuCores: GPUs are not assigned to replicas on the {target.name} target; every "
            "replica sees all GPUs of this machine"
        )
    if config.namespace and not target.cluster:
        out.append(f"namespace: Kubernetes namespaces do not apply to the {target.name} target")
    elif config.namespace and config.namespace != target.namespace:
        out.append(
            f"namespace {config.namespace!r}: services go into the namespace "
            f"{target.namespace!r} the {target.name} cluster was attached with"
        )
    if config.compute_target_name and config.compute_target_name != target.name:
        out.append(
            f"computeTargetName {config.compute_target_name!r}: not used; the service runs on "
            f"the {target.name} compute target"
        )
    return out


LOGS_AND_METRICS = (
    "replica output is in `modelport service logs`, request counters at the router's /metrics"
)
APP_INSIGHTS_WARNING = (
    "appInsightsEnabled: an endpoint's own setting sends nothing; set enable_app_insights "
    f"on its versions for OpenTelemetry traces; {LOGS_AND_METRICS}"
)
BLOBFUSE_WARNING = (
    "blobfuse_enabled: models are copied into each deployment (each pod, on a cluster); "
    "the setting changes nothing"
)


_DOCKER = {
    "base_image": "baseImage",
    "base_dockerfile": "baseDockerfile",
    "shm_size": "shmSize",
    "arguments": "arguments",
    "gpu_support": "gpuSupport",
}


def environment_warnings(env: EnvironmentSpec, target: Target) -> list[str]:
    out = []
    docker = env.docker
    used = [key for name, key in _DOCKER.items() if getattr(docker, name)]
    if docker.enabled or used or docker.base_image_registry.address:
        keys = ", ".join(f"docker.{k}" for k in used or ["enabled"])
        where = (
            "a virtualenv built in each pod on modelport's runtime image"
            if target.cluster
            else "a virtualenv with this machine's Python"
        )
        out.append(
            f"{keys}: replicas do not run in this environment's image on the {target.name} "
            f"target but in {where}, so the image and its system packages are not used"
        )
    channels = (env.python.conda_dependencies or {}).get("channels") or []
    if channels:
        out.append(
            f"conda channels {', '.join(map(str, channels))}: not used; packages are installed "
            "from PyPI (conda package names are looked up there)"
        )
    if env.databricks:
        out.append(f"databricks: not used on the {target.name} target")
    return out


_LEGACY = {
    "extra_docker_file_steps": "extraDockerfileSteps",
    "base_image": "baseImage",
    "base_image_registry": "baseImageRegistry",
    "enable_gpu": "enableGpu",
    "cuda_version": "cudaVersion",
}


def inference_warnings(config: InferenceConfigSpec, target: Target) -> list[str]:
    out = [
        f"{key}: not used on the {target.name} target (no container image is built)"
        for name, key in _LEGACY.items()
        if getattr(config, name)
    ]
    if config.environment is not None:
        out += environment_warnings(
            EnvironmentSpec.model_validate(config.environment.model_dump()), target
        )
    return out


def warnings(
    config: DeploymentConfiguration, inference: InferenceConfigSpec | None, target: Target
) -> list[str]:
    found = deployment_warnings(config, target)
    if inference is not None:
        found += inference_warnings(inference, target)
    return found
