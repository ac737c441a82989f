"""``AksEndpoint``: up to six versions behind one scoring URI, as v1 has it.

``Model.deploy`` with ``AksEndpoint.deploy_configuration(version_name=...,
traffic_percentile=...)`` makes the endpoint with its first version; ``create_version``,
``update_version`` (None: unchanged) and ``delete_version`` change the versions; each
version in ``endpoint.versions`` is an ``AksWebservice`` with ``traffic_percentile``,
``is_default`` and ``version_type``.  Beyond v1: shadow versions
(``shadow_percentile``), sticky assignment, per-version statistics and gated promotion.
"""

from __future__ import annotations

import builtins
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from modelport.errors import ConflictError, InvalidInputError, ModelportError, NotFoundError
from modelport.sdk.webservice import (
    POLL_S,
    AksServiceAccessToken,
    AksWebservice,
    _config_document,
    _current_given,
    _given,
    _inference_body,
    _metadata,
    merge_settings,
)
from modelport.sdk.workspace import Workspace
from modelport.spec.compute import LOCAL
from modelport.spec.deployment import (
    AksEndpointDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
)
from modelport.spec.names import check_service_name

if TYPE_CHECKING:
    from modelport.sdk.compute import ComputeTarget
    from modelport.sdk.inference import InferenceConfig
    from modelport.sdk.model import Model

COMPUTE_TYPE = "AKSENDPOINT"
VERSION_HEADER = "azureml-model-deployment"


class VersionType:
    """v1's ``azureml.core.webservice.aks.VersionType``."""

    control = "Control"
    treatment = "Treatment"


class AksEndpoint(AksWebservice):
    """An endpoint: ``AksEndpoint(ws, name)`` loads it."""

    _collection = "/api/v1/endpoints"
    _noun = "endpoint"

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return object.__new__(cls)

    def _load(self, data: dict[str, Any]) -> None:
        self._data = data
        self.state: str = data["state"]
        self.error: str | None = data.get("error")
        self.scoring_uri: str = data["scoringUri"]
        self.swagger_uri: str = data["swaggerUri"]
        self.compute_type: str = data["computeType"]
        self.auth_enabled: bool = data["authEnabled"]
        self.token_auth_enabled: bool = data.get("tokenAuthEnabled", False)
        self.created_time: str = data["createdTime"]
        self.updated_time: str = data["updatedTime"]
        self.tags: dict[str, str] = dict(data.get("tags") or {})
        self.properties: dict[str, str] = dict(data.get("properties") or {})
        self.description: str | None = data.get("description")
        self.versions: dict[str, EndpointVersion] = {
            name: EndpointVersion._of(self, item) for name, item in data["versions"].items()
        }
        self.models: list[str] = sorted({m for v in self.versions.values() for m in v.models})
        self.warnings: list[str] = list(data.get("warnings") or [])
        self.promotion: dict[str, Any] | None = data.get("promotion")

    @staticmethod
    def deploy_configuration(  # type: ignore[override]  # v1's own parameters
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        autoscale_scale_down_window_seconds: int | None = None,
        auth_enabled: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        enable_app_insights: bool | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        namespace: str | None = None,
        token_auth_enabled: bool | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        version_name: str | None = None,
        traffic_percentile: int | None = None,
        capture_sample_rate: float | None = None,
        capture_max_bytes: int | None = None,
        capture_redact: builtins.list[str] | None = None,
        pipelining_enabled: bool | None = None,
    ) -> AksEndpointDeploymentConfiguration:
        return AksEndpointDeploymentConfiguration.create(_given(locals()))

    # -- state ---------------------------------------------------------------------
    def wait_for_deployment(
        self, show_output: bool = False, timeout_sec: float | None = None
    ) -> None:
        """Poll until every version's latest change is rolled out; raises if one failed."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        shown: dict[str, int] = {}
        while True:
            self.update_deployment_state()
            if show_output:
                for version in self.versions.values():
                    messages = version._data["deploymentStatus"]["messages"]
                    for line in messages[shown.get(version.name, 0) :]:
                        print(f"{version.name}: {line}", file=sys.stderr)
                    shown[version.name] = len(messages)
            if all(v._settled for v in self.versions.values()) and self.state != "Transitioning":
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ModelportError(
                    f"Deployment polling exceeded timeout override of {timeout_sec}s",
                    hint=f"modelport endpoint show -n {self.name}",
                )
            time.sleep(POLL_S)
        failed = [v for v in self.versions.values() if v.state in ("Failed", "Unschedulable")]
        if failed:
            errors = "\n".join(f"{v.name}: {v.error}" for v in failed)
            raise ModelportError(
                "Service deployment polling reached non-successful terminal state, current "
                f"service state: {failed[0].state}\n{errors}",
                hint=f"modelport endpoint logs -n {self.name} --version {failed[0].name}",
            )
        if show_output:
            print(
                f'{COMPUTE_TYPE} service creation operation finished, operation "Succeeded"',
                file=sys.stderr,
            )

    # -- operations ----------------------------------------------------------------
    def get_logs(  # type: ignore[override]  # v1's signature, plus the version
        self, num_lines: int = 5000, version: str | None = None
    ) -> str:
        params: dict[str, Any] = {"num_lines": num_lines}
        if version is not None:
            params["version"] = version
        data = self.workspace.client.call("GET", f"{self._url()}/logs", params=params)
        return str(data["logs"])

    def get_events(self) -> builtins.list[dict[str, Any]]:
        """What happened to the traffic: promotion steps, roll-backs and their figures."""
        data = self.workspace.client.call("GET", f"{self._url()}/events")
        return list(data["value"])

    def update(  # type: ignore[override]
        self,
        auth_enabled: bool | None = None,
        token_auth_enabled: bool | None = None,
        enable_app_insights: bool | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        sticky_header: str | None = None,
        sticky_cookie: str | None = None,
        shadow_tolerance: float | None = None,
    ) -> None:
        """The endpoint's own settings (v1's), and beyond v1 the request header or cookie
        that keeps a client on one version, and the numeric tolerance shadows are
        compared with."""
        body = _given(
            {
                "authEnabled": auth_enabled,
                "tokenAuthEnabled": token_auth_enabled,
                "appInsightsEnabled": enable_app_insights,
                "description": description,
                "tags": tags,
                "properties": properties,
                "tolerance": shadow_tolerance,
            }
        )
        if sticky_header is not None or sticky_cookie is not None:
            body["sticky"] = _given({"header": sticky_header, "cookie": sticky_cookie})
        if not body:
            raise InvalidInputError("No parameters provided to update.")
        self._load(self.workspace.client.call("PATCH", self._url(), json=body))

    def create_version(
        self,
        version_name: str,
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        models: Sequence[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        traffic_percentile: int | None = None,
        is_default: bool | None = None,
        is_control_version_type: bool | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        shadow_percentile: int | None = None,
    ) -> None:
        """Add a version (a deployment of its own) with its share of the traffic."""
        settings, rules, metadata = _version_arguments(locals())
        check_service_name(version_name)
        if not models or inference_config is None:
            raise InvalidInputError("create_version needs models and an inference_config")
        config = AksServiceDeploymentConfiguration.create(settings)
        body = {
            "versionName": version_name,
            "models": [m.id for m in models],
            "deploymentConfig": _config_document(config),
            **_rule_body(rules),
            **metadata,
            **_inference_body(self.workspace, inference_config, f"{self.name}-{version_name}"),
        }
        self._load(self.workspace.client.call("POST", f"{self._url()}/versions", json=body))

    def update_version(
        self,
        version_name: str,
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        models: Sequence[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        traffic_percentile: int | None = None,
        is_default: bool | None = None,
        is_control_version_type: bool | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        shadow_percentile: int | None = None,
    ) -> None:
        """Change a version: what is None stays as it is (v1's update_version)."""
        settings, rules, metadata = _version_arguments(locals())
        version = self._version(version_name)
        body: dict[str, Any] = {**_rule_body(rules), **metadata}
        if models is not None:
            body["models"] = [m.id for m in models]
        if inference_config is not None:
            body.update(
                _inference_body(self.workspace, inference_config, f"{self.name}-{version_name}")
            )
        if settings:
            merged = merge_settings(_current_given(version._data), settings)
            body["deploymentConfig"] = _config_document(
                AksServiceDeploymentConfiguration.create(merged)
            )
        if not body:
            raise InvalidInputError("No parameters provided to update.")
        path = f"{self._url()}/versions/{quote(version_name)}"
        self._load(self.workspace.client.call("PATCH", path, json=body))

    def deploy_version(
        self,
        version_name: str | None,
        models: Sequence[Model] | None,
        inference_config: InferenceConfig | None,
        deployment_config: DeploymentConfiguration | None,
        traffic_percentile: int | None = None,
        is_default: bool | None = None,
        is_control_version_type: bool | None = None,
        shadow_percentile: int | None = None,
    ) -> None:
        """Add a version, or change one that exists, from whole configurations (what the
        CLI's files give); the version name may come from an AKSENDPOINT configuration."""
        doc = _config_document(deployment_config) if deployment_config is not None else None
        name = version_name or (doc or {}).get("versionName")
        if not name:
            raise InvalidInputError("give the version's name (--version-name or versionName)")
        check_service_name(name)
        rules = _given(
            {
                "traffic_percentile": traffic_percentile,
                "is_default": is_default,
                "is_control_version_type": is_control_version_type,
                "shadow_percentile": shadow_percentile,
            }
        )
        body: dict[str, Any] = {**_rule_body(rules)}
        if deployment_config is not None:
            body.update(_metadata(deployment_config.given()))
        if doc is not None:
            body["deploymentConfig"] = doc
        if models:
            body["models"] = [m.id for m in models]
        if inference_config is not None:
            body.update(_inference_body(self.workspace, inference_config, f"{self.name}-{name}"))
        self.update_deployment_state()
        if name not in self.versions and (not models or inference_config is None):
            raise InvalidInputError(
                f"version {name!r} is new: it needs models and an inference config"
            )
        self._put_version(name, body)

    def _put_version(self, name: str, body: dict[str, Any]) -> None:
        """Change version ``name`` as ``body`` says, or add it if the endpoint lacks it."""
        if name in self.versions:
            if not body:
                raise InvalidInputError("No parameters provided to update.")
            path = f"{self._url()}/versions/{quote(name)}"
            self._load(self.workspace.client.call("PATCH", path, json=body))
            return
        body = {"deploymentConfig": {"computeType": "AKS"}, **body, "versionName": name}
        self._load(self.workspace.client.call("POST", f"{self._url()}/versions", json=body))

    def delete_version(self, version_name: str) -> None:
        """Take a version out of the split at once; its replicas drain, then go."""
        path = f"{self._url()}/versions/{quote(version_name)}"
        self._load(self.workspace.client.call("DELETE", path))

    # -- beyond v1: statistics and promotion ----------------------------------------------
    def get_stats(self, window_seconds: float = 300) -> dict[str, Any]:
        """Per version over the window: requests, errors by class, error rate, p50/p95/p99
        latency (ms), queue rejections; for shadows their agreement with the live answers."""
        data: dict[str, Any] = self.workspace.client.call(
            "GET", f"{self._url()}/stats", params={"window": window_seconds}
        )
        return data

    def promote(
        self,
        version: str,
        steps: Sequence[int] = (10, 25, 50, 100),
        step_seconds: float = 60,
        max_error_rate_delta: float = 0.01,
        max_p99_ratio: float = 1.5,
        min_requests: int = 20,
        wait: bool = False,
        timeout_sec: float | None = None,
    ) -> dict[str, Any]:
        """Move traffic to ``version`` step by step while its error rate and p99 latency
        stay within the bounds of the control's; it becomes the default and the control
        at the end, and the traffic goes back to the control the moment a bound breaks.
        With ``wait``, returns when it is promoted or rolled back."""
        body = {
            "version": version,
            "steps": list(steps),
            "stepSeconds": step_seconds,
            "maxErrorRateDelta": max_error_rate_delta,
            "maxP99Ratio": max_p99_ratio,
            "minRequests": min_requests,
        }
        self._load(self.workspace.client.call("POST", f"{self._url()}/promote", json=body))
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while wait and self.promotion is not None and self.promotion["state"] == "Running":
            if deadline is not None and time.monotonic() > deadline:
                raise ModelportError(f"the promotion of {version!r} is still running")
            time.sleep(POLL_S)
            self.update_deployment_state()
        return dict(self.promotion or {})

    def cancel_promotion(self) -> None:
        self._load(self.workspace.client.call("DELETE", f"{self._url()}/promote"))

    def _version(self, name: str) -> EndpointVersion:
        version = self.versions.get(name)
        if version is None:
            self.update_deployment_state()
            version = self.versions.get(name)
        if version is None:
            known = ", ".join(self.versions) or "none"
            raise NotFoundError(f"no version {name!r} in endpoint {self.name} (it has {known})")
        return version

    @staticmethod
    def list(  # type: ignore[override]
        workspace: Workspace, **_: Any
    ) -> builtins.list[AksEndpoint]:
        data = workspace.client.call("GET", "/api/v1/endpoints")
        return [AksEndpoint(workspace, item["name"], _data=item) for item in data["value"]]


class EndpointVersion(AksWebservice):
    """One version of an endpoint: a deployment with its share of the endpoint's traffic."""

    endpoint: AksEndpoint

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return object.__new__(cls)

    @classmethod
    def _of(cls, endpoint: AksEndpoint, data: dict[str, Any]) -> EndpointVersion:
        version: EndpointVersion = object.__new__(cls)
        version.workspace = endpoint.workspace
        version.endpoint = endpoint
        version.name = data["name"]
        version._load(data)
        return version

    def _load(self, data: dict[str, Any]) -> None:
        super()._load(data)
        self.traffic_percentile: int = data["trafficPercentile"]
        self.is_default: bool = data["isDefault"]
        self.version_type: str = data["versionType"]
        self.shadow_percentile: int = data.get("shadowPercentile", 0)
        self.share: int = data.get("share", 0)

    @property
    def _settled(self) -> bool:
        status = self._data["deploymentStatus"]
        return status["applied"] == status["generation"] and self.state != "Transitioning"

    def update_deployment_state(self) -> None:
        self.endpoint.update_deployment_state()
        self._load(self.endpoint._version(self.name)._data)

    def get_keys(self) -> tuple[str, str]:
        return self.endpoint.get_keys()

    def get_access_token(self) -> AksServiceAccessToken:
        """The endpoint's: a token names the endpoint, whichever version serves."""
        self._token = self.endpoint.get_access_token()
        return self._token

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        self.endpoint.regen_key(key, set_key)

    def get_logs(self, num_lines: int = 5000, init: bool = False, **_: Any) -> str:
        return self.endpoint.get_logs(num_lines, version=self.name)

    def run(self, input_data: Any) -> Any:
        """Score on this version (pinned with the ``azureml-model-deployment`` header)."""
        return self._score(input_data, {VERSION_HEADER: self.name})

    def update(self, *args: Any, **settings: Any) -> None:
        if args:
            raise InvalidInputError("give a version's settings by name")
        self.endpoint.update_version(self.name, **settings)

    def delete(self, wait: bool = True, timeout_sec: float | None = None) -> None:
        self.endpoint.delete_version(self.name)


_VERSION_RULES = (
    "traffic_percentile",
    "is_default",
    "is_control_version_type",
    "shadow_percentile",
)


def _version_arguments(
    given: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``create_version``/``update_version`` arguments (their ``locals()``) given a value,
    apart: deployment settings, traffic rules, and tags/properties/description."""
    settings = _given(given)
    rules = {k: settings.pop(k) for k in _VERSION_RULES if k in settings}
    metadata = _metadata(settings)
    for key in ("self", "version_name", "models", "inference_config", *metadata):
        settings.pop(key, None)
    return settings, rules, metadata


def _rule_body(rules: dict[str, Any]) -> dict[str, Any]:
    names = {
        "traffic_percentile": "trafficPercentile",
        "is_default": "isDefault",
        "is_control_version_type": "isControlVersionType",
        "shadow_percentile": "shadowPercentile",
    }
    return {names[k]: v for k, v in rules.items()}


def deploy_endpoint(
    workspace: Workspace,
    name: str,
    models: Sequence[Model],
    inference_config: InferenceConfig,
    config: AksEndpointDeploymentConfiguration,
    deployment_target: str | ComputeTarget | None,
    overwrite: bool,
) -> AksEndpoint:
    """``Model.deploy`` with an endpoint configuration: the endpoint with its first
    version; with ``overwrite``, an existing endpoint gets that version added or
    replaced."""
    target = getattr(deployment_target, "name", deployment_target)
    inference = _inference_body(workspace, inference_config, name)
    body = {
        **({"computeTarget": target} if target not in (None, LOCAL) else {}),
        "name": name,
        "models": [m.id for m in models],
        "deploymentConfig": _config_document(config),
        **_metadata(config.given()),
        **inference,
    }
    try:
        data = workspace.client.call("POST", "/api/v1/endpoints", json=body)
    except ConflictError:
        if not overwrite:
            raise
        return _replace_version(workspace, name, body)
    endpoint = AksEndpoint(workspace, name, _data=data)
    for note in endpoint.warnings:  # as v1's SDK, deploy speaks on the console
        print(f"Warning: {note}", file=sys.stderr)
    return endpoint


def _replace_version(workspace: Workspace, name: str, body: dict[str, Any]) -> AksEndpoint:
    endpoint = AksEndpoint(workspace, name)
    version = str(body["deploymentConfig"].get("versionName") or name)
    fields = {k: v for k, v in body.items() if k not in ("name", "computeTarget")}
    if "trafficPercentile" in body["deploymentConfig"]:
        fields["trafficPercentile"] = body["deploymentConfig"]["trafficPercentile"]
    endpoint._put_version(version, fields)
    return endpoint
