"""What a service's spec means for the replicas: a pure decision, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelport import tracing
from modelport.autoscale.policy import AutoscaleSettings
from modelport.compute.local.limits import Resources
from modelport.compute.local.probing import ProbeSettings
from modelport.spec.deployment import (
    AciServiceDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
    deployment_config_from_document,
)
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.inference import InferenceConfigSpec

# The replica's own timeout trails the router's 504 a little, so a runaway run()
# is interrupted soon after the client was answered.
REPLICA_TIMEOUT_MARGIN_MS = 500


@dataclass(frozen=True)
class DeploymentPlan:
    replicas: int
    auth: bool
    scoring_timeout_ms: int
    max_concurrent: int
    probe: ProbeSettings
    fixed_port: int | None
    compute_type: str
    max_wait_ms: int = 500
    max_queue: int = 100
    autoscale: AutoscaleSettings | None = None
    resources: Resources = field(default_factory=Resources)
    collect_model_data: bool = False
    gpu_cores: int = 0  # GPUs per replica
    token_auth: bool = False  # tokens (JWT) instead of keys; ``auth`` is then true too
    capture: CaptureSettings | None = None  # bodies the router writes (router/capture.py)
    tracing: bool = False  # enable_app_insights: OpenTelemetry spans (modelport/tracing.py)
    pipelining: bool = True  # the router may send a fast replica its next request early
    batch_size: int = 0  # run() is @batched(max_batch_size=...): 0 when it is not

    @property
    def slots(self) -> int:
        """Requests the router lets one replica hold: a batching one, a whole batch."""
        return max(self.max_concurrent, self.batch_size)

    @property
    def batching(self) -> bool:
        return self.batch_size > 0


@dataclass(frozen=True)
class CaptureSettings:
    """``captureSampleRate``, ``captureMaxBytes``, ``captureRedact``."""

    rate: float
    max_bytes: int
    redact: tuple[str, ...] = ()


def queue_bound(max_replicas: int, max_concurrent: int) -> int:
    """Room for ten requests per slot at full scale: a burst waits, a flood is refused."""
    return max(100, 10 * max_replicas * max_concurrent)


def deployment_config(spec: dict[str, Any]) -> DeploymentConfiguration:
    return deployment_config_from_document(spec["deploymentConfig"], "deployment config")


def inference_config(spec: dict[str, Any]) -> InferenceConfigSpec:
    return InferenceConfigSpec.from_document(spec["inferenceConfig"], "inference config")


def environment(spec: dict[str, Any]) -> EnvironmentSpec | None:
    env = inference_config(spec).environment
    return None if env is None else EnvironmentSpec.model_validate(env.model_dump())


def plan(spec: dict[str, Any]) -> DeploymentPlan:
    given = deployment_config(spec)
    config = given.resolved()
    batch = int(spec.get("batchSize") or 0)
    if isinstance(config, LocalWebserviceDeploymentConfiguration):
        return DeploymentPlan(
            1,
            False,
            60000,
            1,
            ProbeSettings(),
            config.port,
            "Local",
            max_queue=queue_bound(1, 1),
            batch_size=batch,
        )
    if isinstance(config, AciServiceDeploymentConfiguration):
        # One container instance in v1: one replica here, probed and timed as AKS's defaults.
        return DeploymentPlan(
            replicas=1,
            auth=bool(config.auth_enabled),
            scoring_timeout_ms=60000,
            max_concurrent=1,
            probe=ProbeSettings(),
            fixed_port=None,
            compute_type="ACI",
            max_queue=queue_bound(1, 1),
            batch_size=batch,
            resources=_resources(given),
            collect_model_data=bool(config.collect_model_data),
            tracing=bool(config.enable_app_insights),
        )
    assert isinstance(config, AksServiceDeploymentConfiguration)
    cap = config.replica_max_concurrent_requests or 1
    autoscale = None
    if config.autoscale_enabled:
        autoscale = AutoscaleSettings(
            min_replicas=config.autoscale_min_replicas or 1,
            max_replicas=config.autoscale_max_replicas or 10,
            target_utilization=(config.autoscale_target_utilization or 70) / 100,
            refresh_s=float(config.autoscale_refresh_seconds or 1),
            down_window_s=float(config.autoscale_scale_down_window_seconds or 60),
            # A batching replica takes a whole batch: queued requests count in batches.
            max_concurrent=max(cap, batch),
        )
        count, top = autoscale.min_replicas, autoscale.max_replicas
    else:
        count = top = config.num_replicas or 1
    return DeploymentPlan(
        replicas=count,
        auth=bool(config.auth_enabled or config.token_auth_enabled),
        scoring_timeout_ms=config.scoring_timeout_ms or 60000,
        max_concurrent=config.replica_max_concurrent_requests or 1,
        probe=ProbeSettings(
            period_s=float(config.period_seconds or 10),
            timeout_s=float(config.timeout_seconds or 2),
            failure_threshold=config.failure_threshold or 3,
            success_threshold=config.success_threshold or 1,
            initial_delay_s=float(config.initial_delay_seconds or 310),
        ),
        fixed_port=None,
        compute_type="AKS",
        max_wait_ms=config.max_request_wait_time or 500,
        max_queue=queue_bound(top, cap),
        pipelining=config.pipelining_enabled is not False,
        batch_size=batch,
        autoscale=autoscale,
        resources=_resources(given),
        collect_model_data=bool(config.collect_model_data),
        gpu_cores=config.gpu_cores or 0,
        token_auth=bool(config.token_auth_enabled),
        capture=CaptureSettings(
            config.capture_sample_rate,
            config.capture_max_bytes or 65536,
            tuple(config.capture_redact or ()),
        )
        if config.capture_sample_rate
        else None,
        tracing=bool(config.enable_app_insights),
    )


def _resources(given: DeploymentConfiguration) -> Resources:
    """Only what the configuration gives is enforced: v1's defaults (0.1 CPU, 0.5 GB) are
    requests for a cluster's scheduler, and as CPU weights on one machine they would starve
    replicas next to the router."""
    values = given.given()
    return Resources(
        values.get("cpu_cores"),
        values.get("cpu_cores_limit"),
        values.get("memory_gb"),
        values.get("memory_gb_limit"),
    )


# Where a replica's ModelDataCollector writes (runtime/collection.py reads it); set by
# a target that keeps model data.
MODEL_DATA_DIR = "MODELPORT_MODELDATA_DIR"


def replica_environment(plan: DeploymentPlan, name: str) -> dict[str, str]:
    return {
        "SCORING_TIMEOUT_MS": str(plan.scoring_timeout_ms + REPLICA_TIMEOUT_MARGIN_MS),
        "MODELPORT_WORKERS": str(plan.max_concurrent),
        "SERVICE_NAME": name,
        "WORKER_COUNT": "1",
        # v1's switch for ModelDataCollector inside the replica
        "AML_MODEL_DC_STORAGE_ENABLED": "true" if plan.collect_model_data else "false",
        tracing.SWITCH: "1" if plan.tracing else "0",
    }
