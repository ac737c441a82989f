"""Every number a deployment configuration or registration takes has a range, in its message."""

from __future__ import annotations

import math

import pytest

from modelport.errors import ConfigError
from modelport.spec.deployment import (
    AksServiceDeploymentConfiguration,
    deployment_config_from_document,
)
from modelport.spec.model import ModelFile, ModelRegistration

DAY_S = 86_400
# (SDK argument, file key, highest accepted, lowest accepted); autoscale ones need it on.
BOUNDS = [
    ("num_replicas", ("numReplicas",), 1000, 1),
    ("autoscale_min_replicas", ("autoScaler", "minReplicas"), 1000, 1),
    ("autoscale_max_replicas", ("autoScaler", "maxReplicas"), 1000, 1),
    ("autoscale_refresh_seconds", ("autoScaler", "refreshPeriodInSeconds"), DAY_S, 1),
    (
        "autoscale_scale_down_window_seconds",
        ("autoScaler", "scaleDownWindowSeconds"),
        DAY_S,
        1,
    ),
    ("scoring_timeout_ms", ("scoringTimeoutMs",), DAY_S * 1000, 1),
    ("max_request_wait_time", ("maxQueueWaitMs",), DAY_S * 1000, 1),
    ("replica_max_concurrent_requests", ("maxConcurrentRequestsPerContainer",), 1000, 1),
    ("period_seconds", ("livenessProbeRequirements", "periodSeconds"), DAY_S, 1),
    ("initial_delay_seconds", ("livenessProbeRequirements", "initialDelaySeconds"), DAY_S, 1),
    ("timeout_seconds", ("livenessProbeRequirements", "timeoutSeconds"), DAY_S, 1),
    ("success_threshold", ("livenessProbeRequirements", "successThreshold"), 1000, 1),
    ("failure_threshold", ("livenessProbeRequirements", "failureThreshold"), 1000, 1),
    ("gpu_cores", ("gpuCores",), 64, 0),
    ("cpu_cores", ("containerResourceRequirements", "cpu"), 1024, 0.001),
    ("cpu_cores_limit", ("containerResourceRequirements", "cpuLimit"), 1024, 0.001),
    ("memory_gb", ("containerResourceRequirements", "memoryInGB"), 16384, 0.001),
    ("memory_gb_limit", ("containerResourceRequirements", "memoryInGBLimit"), 16384, 0.001),
]
IDS = [b[0] for b in BOUNDS]


def _config(name: str, value: object) -> dict[str, object]:
    values: dict[str, object] = {name: value}
    if name.startswith("autoscale_"):
        values["autoscale_enabled"] = True
    elif name != "num_replicas":
        values["num_replicas"] = 1
    if name.endswith("_limit"):  # a limit may not be below its request
        values[name.removesuffix("_limit")] = 0.001
    if name == "autoscale_min_replicas":
        values["autoscale_max_replicas"] = 1000
    return values


def _document(path: tuple[str, ...], value: object, name: str) -> dict[str, object]:
    doc: dict[str, object] = {"computeType": "aks"}
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})  # type: ignore[assignment]
    node[path[-1]] = value
    if name.startswith("autoscale_"):
        doc.setdefault("autoScaler", {})["autoscaleEnabled"] = True  # type: ignore[index]
        if name == "autoscale_min_replicas":
            doc["autoScaler"]["maxReplicas"] = 1000  # type: ignore[index]
    elif name != "num_replicas":
        doc["numReplicas"] = 1
    return doc


@pytest.mark.parametrize(("name", "path", "high", "low"), BOUNDS, ids=IDS)
def test_the_range_ends_are_accepted(
    name: str, path: tuple[str, ...], high: float, low: float
) -> None:
    for value in (low, high):
        config = AksServiceDeploymentConfiguration.create(_config(name, value))
        assert getattr(config, name) == value


def _too_big(high: float, low: float) -> list[float]:
    if isinstance(low, int):  # integer settings refuse floats with a message of their own
        return [high + 1, 10**22]
    return [high + 0.5, 1e22, math.inf, math.nan]


TOO_BIG = [(name, high, low, v) for name, _, high, low in BOUNDS for v in _too_big(high, low)]


@pytest.mark.parametrize(("name", "high", "low", "value"), TOO_BIG)
def test_beyond_the_range_is_refused_with_the_range(
    name: str, high: float, low: float, value: float
) -> None:
    with pytest.raises(ConfigError, match=rf"{name} must be between {low} and {high}\."):
        AksServiceDeploymentConfiguration.create(_config(name, value))


@pytest.mark.parametrize(("name", "path", "high", "low"), BOUNDS, ids=IDS)
def test_a_file_value_beyond_the_range_names_the_file(
    name: str, path: tuple[str, ...], high: float, low: float
) -> None:
    value = 10**22 if isinstance(low, int) else 1e22
    with pytest.raises(ConfigError) as caught:
        deployment_config_from_document(_document(path, value, name), "dc.json")
    assert f"dc.json: Invalid configuration, {name} must be between {low} and {high}." in str(
        caught.value
    )


def test_below_zero_keeps_the_v1_message_alone() -> None:
    with pytest.raises(ConfigError) as caught:
        AksServiceDeploymentConfiguration.create({"num_replicas": 1, "scoring_timeout_ms": -5})
    assert caught.value.message == (
        "Invalid configuration, scoring_timeout_ms must be greater than zero. (got -5)"
    )


def test_a_fraction_of_a_millicore_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cpu_cores must be between 0\.001 and 1024"):
        AksServiceDeploymentConfiguration.create({"num_replicas": 1, "cpu_cores": 0.0001})


@pytest.mark.parametrize("key", ["primary_key", "secondary_key"])
def test_keys_longer_than_their_column_are_refused_without_echoing_them(key: str) -> None:
    AksServiceDeploymentConfiguration.create({"num_replicas": 1, key: "k" * 255})
    with pytest.raises(ConfigError) as caught:
        AksServiceDeploymentConfiguration.create({"num_replicas": 1, key: "k" * 256})
    assert f"{key} must be at most 255 characters long (got 256 characters)" in str(caught.value)
    assert "kkkkkkkk" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("basename", "b" * 256),
        ("model_framework", "f" * 65),
        ("model_framework_version", "1" * 65),
    ],
)
def test_registration_strings_longer_than_their_columns_are_refused(field: str, value: str) -> None:
    file = ModelFile(path="m.bin", sha256="0" * 64, size=1)
    values = {"name": "m", "kind": "file", "basename": "m.bin", "files": [file], field: value}
    with pytest.raises(ValueError, match="at most"):
        ModelRegistration.model_validate(values)


def test_a_file_size_beyond_64_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="less than or equal to 9223372036854775807"):
        ModelFile(path="m.bin", sha256="0" * 64, size=2**63)
