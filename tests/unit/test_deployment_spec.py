from __future__ import annotations

import json

import pytest

from modelport import AksEndpoint, AksWebservice, LocalWebservice
from modelport.errors import ConfigError
from modelport.spec.deployment import (
    AksServiceDeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
    deployment_config_from_document,
)
from modelport.spec.document import parse_document

# Every rule of contract section 1.1: the SDK arguments and the v1 message they give.
V1_RULES = [
    *[
        ({name: -1}, f"{name} must be greater than zero.")
        for name in (
            "cpu_cores",
            "memory_gb",
            "period_seconds",
            "initial_delay_seconds",
            "timeout_seconds",
            "success_threshold",
            "failure_threshold",
            "scoring_timeout_ms",
            "replica_max_concurrent_requests",
            "max_request_wait_time",
        )
    ],
    ({"num_replicas": 0, "autoscale_enabled": False}, "num_replicas must be greater than zero."),
    ({"gpu_cores": -1}, "gpu_cores must be greater than or equal to zero."),
    (
        {"cpu_cores": 2, "cpu_cores_limit": 1},
        "cpu_cores_limit must be greater than or equal to cpu_cores.",
    ),
    (
        {"memory_gb": 2, "memory_gb_limit": 1},
        "memory_gb_limit must be greater than or equal to memory_gb.",
    ),
    (
        {"namespace": "Bad_NS"},
        "namespace must be a valid Kubernetes namespace. Regex for validation is ^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$",
    ),
    (
        {"autoscale_enabled": True, "num_replicas": 2},
        "autoscale enabled and num_replicas provided.",
    ),
    *[
        (
            {"autoscale_enabled": True, f"autoscale_{x}": 0},
            f"autoscale_{x} must be greater than zero.",
        )
        for x in ("min_replicas", "max_replicas", "refresh_seconds", "target_utilization")
    ],
    (
        {"autoscale_enabled": True, "autoscale_min_replicas": 5, "autoscale_max_replicas": 2},
        "autoscale_min_replicas cannot be greater than autoscale_max_replicas.",
    ),
    ({"autoscale_enabled": False}, "autoscale disabled but num_replicas not provided."),
    *[
        (
            {"autoscale_enabled": False, "num_replicas": 1, f"autoscale_{x}": 3},
            f"autoscale_{x} provided without enabling autoscaling.",
        )
        for x in ("min_replicas", "max_replicas", "refresh_seconds", "target_utilization")
    ],
    (
        {"autoscale_min_replicas": 2},
        "autoscale_min_replicas provided without enabling autoscaling.",
    ),
    (
        {"auth_enabled": True, "token_auth_enabled": True},
        "auth_enabled and token_auth_enabled cannot both be true.",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), V1_RULES)
def test_every_v1_rule_gives_its_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AksWebservice.deploy_configuration(**kwargs)
    assert f"Invalid configuration, {message}" in info.value.message


def test_message_names_the_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"cpu_cores must be greater than zero\. \(got -2\.5\)"):
        AksWebservice.deploy_configuration(cpu_cores=-2.5)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        AksWebservice.deploy_configuration(cpu_cores=-1, memory_gb=0, timeout_seconds=0)
    assert len(info.value.message.splitlines()) == 3


def test_defaults_follow_the_contract() -> None:
    config = AksWebservice.deploy_configuration().resolved()
    assert config.autoscale_enabled is True
    assert (config.autoscale_min_replicas, config.autoscale_max_replicas) == (1, 10)
    assert (config.autoscale_target_utilization, config.autoscale_refresh_seconds) == (70, 1)
    assert (config.cpu_cores, config.memory_gb) == (0.1, 0.5)
    assert (config.scoring_timeout_ms, config.max_request_wait_time) == (60000, 500)
    assert config.replica_max_concurrent_requests == 1
    assert config.auth_enabled is True and config.token_auth_enabled is False
    probe = (
        config.period_seconds,
        config.initial_delay_seconds,
        config.timeout_seconds,
        config.success_threshold,
        config.failure_threshold,
    )
    assert probe == (10, 310, 2, 1, 3)


def test_fixed_replicas_turn_autoscale_off_and_token_auth_turns_keys_off() -> None:
    config = AksWebservice.deploy_configuration(num_replicas=3, token_auth_enabled=True)
    resolved = config.resolved()
    assert resolved.autoscale_enabled is False and resolved.num_replicas == 3
    assert resolved.auth_enabled is False


def test_wrong_types_are_refused_with_the_field_name() -> None:
    with pytest.raises(ConfigError, match=r"cpu_cores.*'lots'"):
        AksWebservice.deploy_configuration(cpu_cores="lots")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="auth_enabled"):
        AksWebservice.deploy_configuration(auth_enabled="yes")  # type: ignore[arg-type]


def test_local_port_range() -> None:
    assert LocalWebservice.deploy_configuration(port=8890).port == 8890
    assert LocalWebservice.deploy_configuration().port is None
    with pytest.raises(ConfigError, match=r"port must be an integer in range \[1, 65535\]"):
        LocalWebservice.deploy_configuration(port=70000)


def test_endpoint_version_rules() -> None:
    config = AksEndpoint.deploy_configuration(version_name="control-v1", traffic_percentile=20)
    assert config.to_document()["trafficPercentile"] == 20
    with pytest.raises(ConfigError, match="traffic_percentile cannot be negative or greater"):
        AksEndpoint.deploy_configuration(traffic_percentile=101)
    with pytest.raises(ConfigError, match="provided service name is invalid"):
        AksEndpoint.deploy_configuration(version_name="V1")


AKS_FILE = {
    "computeType": "AKS",
    "autoScaler": {
        "autoscaleEnabled": True,
        "minReplicas": 2,
        "maxReplicas": 4,
        "refreshPeriodInSeconds": 1,
        "targetUtilization": 60,
    },
    "authEnabled": True,
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0, "cpuLimit": 1},
    "gpuCores": 0,
    "scoringTimeoutMs": 30000,
    "maxConcurrentRequestsPerContainer": 2,
    "maxQueueWaitMs": 800,
    "keys": {"primaryKey": "p" * 20, "secondaryKey": "s" * 20},
    "livenessProbeRequirements": {
        "periodSeconds": 5,
        "initialDelaySeconds": 20,
        "timeoutSeconds": 2,
        "successThreshold": 1,
        "failureThreshold": 3,
    },
    "dataCollection": {"storageEnabled": True},
    "namespace": "team-a",
}


def test_v1_file_maps_to_sdk_names_and_back() -> None:
    config = deployment_config_from_document(AKS_FILE)
    assert isinstance(config, AksServiceDeploymentConfiguration)
    assert config.autoscale_min_replicas == 2 and config.cpu_cores_limit == 1
    assert config.replica_max_concurrent_requests == 2 and config.collect_model_data is True
    assert config.primary_key == "p" * 20
    assert config.to_document() == {**AKS_FILE, "computeType": "aks"}


def test_yaml_file_is_accepted() -> None:
    text = "computeType: local\nport: 32267\n"
    config = deployment_config_from_document(parse_document(text, "deploymentconfig.yml"))
    assert isinstance(config, LocalWebserviceDeploymentConfiguration) and config.port == 32267


def test_compute_type_missing_or_unknown() -> None:
    with pytest.raises(ConfigError, match="Need to specify computeType in --deploy-config-file"):
        deployment_config_from_document({"numReplicas": 1})
    with pytest.raises(ConfigError, match="unknown deployment type: batch") as info:
        deployment_config_from_document({"computeType": "batch"})
    assert "aks" in (info.value.hint or "")


def test_unknown_key_is_named_with_a_suggestion() -> None:
    doc = {"computeType": "aks", "autoScaler": {"minReplica": 2}, "scoringTimeoutMS": 5}
    with pytest.raises(ConfigError) as info:
        deployment_config_from_document(doc)
    message = info.value.message
    assert "unknown key 'minReplica' in autoScaler (did you mean 'minReplicas'?)" in message
    assert "unknown key 'scoringTimeoutMS'" in message and "'scoringTimeoutMs'" in message


def test_file_errors_name_the_file_key() -> None:
    doc = {"computeType": "aks", "containerResourceRequirements": {"cpu": -1}}
    with pytest.raises(ConfigError, match="cpu_cores must be greater than zero"):
        deployment_config_from_document(doc)
    doc = {"computeType": "aks", "containerResourceRequirements": {"cpu": "one"}}
    with pytest.raises(ConfigError, match=r"containerResourceRequirements\.cpu"):
        deployment_config_from_document(doc)


def test_min_greater_than_max_from_a_file() -> None:
    doc = {
        "computeType": "aks",
        "autoScaler": {"autoscaleEnabled": True, "minReplicas": 5, "maxReplicas": 3},
    }
    with pytest.raises(ConfigError, match="cannot be greater than autoscale_max_replicas"):
        deployment_config_from_document(doc)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("deploymentconfig.json", '{\n  "computeType": "aks",\n  "numReplicas": ,\n}', "line 3"),
        ("deploymentconfig.yml", "computeType: aks\nautoScaler:\n  minReplicas: [1\n", "line 4"),
    ],
)
def test_unparsable_file_names_the_line(name: str, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where) as info:
        parse_document(text, name)
    assert name in info.value.message


def test_document_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_document(json.dumps([1, 2]), "deploymentconfig.json")
