"""What a service's spec means for the replicas: a pure decision, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelport.spec.deployment import (
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
    period_s: float
    timeout_s: float
    failure_threshold: int
    startup_deadline_s: float
    fixed_port: int | None
    compute_type: str


def deployment_config(spec: dict[str, Any]) -> DeploymentConfiguration:
    return deployment_config_from_document(spec["deploymentConfig"], "deployment config")


def inference_config(spec: dict[str, Any]) -> InferenceConfigSpec:
    return InferenceConfigSpec.from_document(spec["inferenceConfig"], "inference config")


def environment(spec: dict[str, Any]) -> EnvironmentSpec | None:
    env = inference_config(spec).environment
    return None if env is None else EnvironmentSpec.model_validate(env.model_dump())


def plan(spec: dict[str, Any]) -> DeploymentPlan:
    config = deployment_config(spec).resolved()
    if isinstance(config, LocalWebserviceDeploymentConfiguration):
        return DeploymentPlan(1, False, 60000, 1, 10.0, 2.0, 3, 310.0, config.port, "Local")
    assert isinstance(config, AksServiceDeploymentConfiguration)
    if config.autoscale_enabled:
        count = config.autoscale_min_replicas or 1
    else:
        count = config.num_replicas or 1
    return DeploymentPlan(
        replicas=count,
        auth=bool(config.auth_enabled or config.token_auth_enabled),
        scoring_timeout_ms=config.scoring_timeout_ms or 60000,
        max_concurrent=config.replica_max_concurrent_requests or 1,
        period_s=float(config.period_seconds or 10),
        timeout_s=float(config.timeout_seconds or 2),
        failure_threshold=config.failure_threshold or 3,
        startup_deadline_s=float(config.initial_delay_seconds or 310),
        fixed_port=None,
        compute_type="AKS",
    )


def replica_environment(plan: DeploymentPlan, name: str) -> dict[str, str]:
    return {
        "SCORING_TIMEOUT_MS": str(plan.scoring_timeout_ms + REPLICA_TIMEOUT_MARGIN_MS),
        "MODELPORT_WORKERS": str(plan.max_concurrent),
        "SERVICE_NAME": name,
        "WORKER_COUNT": "1",
    }
