"""Deployment configurations of the v1 contract (sections 1.1 to 1.3 and 2.1).

One table, :data:`FIELDS`, declares every setting once: its SDK (snake_case) name,
its path in ``deploymentconfig.json`` (camelCase), the documented default and the
compute types it belongs to.  File loading, serialisation back to the file shape
and default resolution all derive from it.

A configuration keeps what the user gave (``None`` where nothing was given),
because several v1 rules depend on "given or not"; :meth:`resolved` returns the
same configuration with the documented defaults applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Strict
from pydantic import ValidationError as PydanticValidationError

from modelport.errors import ConfigError
from modelport.spec.document import check_mapping, unknown_key_message
from modelport.spec.names import NAMESPACE_RE, SERVICE_NAME_MESSAGE, SERVICE_NAME_RE

Bool = Annotated[bool, Strict()] | None
Int = Annotated[int, Strict()] | None
Float = Annotated[float, Strict()] | None  # strict floats still take ints
Str = Annotated[str, Strict()] | None

AKS, ENDPOINT, LOCAL = "aks", "aksendpoint", "local"
ACI = "aci"  # v1's Azure Container Instances: one container, run here as one replica
COMPUTE_TYPES = (AKS, ENDPOINT, ACI, LOCAL)


@dataclass(frozen=True)
class FieldDef:
    name: str
    path: tuple[str, ...] | None  # None: no file key (SDK or CLI flags only)
    default: Any
    kinds: tuple[str, ...]


_K = (AKS, ENDPOINT)
_KA = (AKS, ENDPOINT, ACI)  # settings ACI shares with AKS, under the same file keys
FIELDS: tuple[FieldDef, ...] = (
    FieldDef("autoscale_enabled", ("autoScaler", "autoscaleEnabled"), None, _K),
    FieldDef("autoscale_min_replicas", ("autoScaler", "minReplicas"), 1, _K),
    FieldDef("autoscale_max_replicas", ("autoScaler", "maxReplicas"), 10, _K),
    FieldDef("autoscale_refresh_seconds", ("autoScaler", "refreshPeriodInSeconds"), 1, _K),
    FieldDef("autoscale_target_utilization", ("autoScaler", "targetUtilization"), 70, _K),
    # modelport's own: how long a lower replica count must suffice before scaling down
    FieldDef(
        "autoscale_scale_down_window_seconds", ("autoScaler", "scaleDownWindowSeconds"), 60, _K
    ),
    FieldDef("collect_model_data", ("dataCollection", "storageEnabled"), False, _KA),
    # modelport's own: the router captures request and response bodies, without code
    FieldDef("capture_sample_rate", ("dataCollection", "captureSampleRate"), 0.0, _K),
    FieldDef("capture_max_bytes", ("dataCollection", "captureMaxBytes"), 65536, _K),
    FieldDef("capture_redact", ("dataCollection", "captureRedact"), None, _K),
    FieldDef("auth_enabled", ("authEnabled",), None, _KA),
    FieldDef("token_auth_enabled", ("tokenAuthEnabled",), False, _K),
    FieldDef("cpu_cores", ("containerResourceRequirements", "cpu"), 0.1, _KA),
    FieldDef("memory_gb", ("containerResourceRequirements", "memoryInGB"), 0.5, _KA),
    FieldDef("cpu_cores_limit", ("containerResourceRequirements", "cpuLimit"), None, _K),
    FieldDef("memory_gb_limit", ("containerResourceRequirements", "memoryInGBLimit"), None, _K),
    FieldDef("gpu_cores", ("gpuCores",), 0, _K),
    FieldDef("enable_app_insights", ("appInsightsEnabled",), False, _KA),
    FieldDef("scoring_timeout_ms", ("scoringTimeoutMs",), 60000, _K),
    FieldDef("replica_max_concurrent_requests", ("maxConcurrentRequestsPerContainer",), 1, _K),
    FieldDef("max_request_wait_time", ("maxQueueWaitMs",), 500, _K),
    # modelport's own: a fast replica may get its next request while one runs
    FieldDef("pipelining_enabled", ("pipeliningEnabled",), True, _K),
    FieldDef("num_replicas", ("numReplicas",), None, _K),
    FieldDef("primary_key", ("keys", "primaryKey"), None, _KA),
    FieldDef("secondary_key", ("keys", "secondaryKey"), None, _KA),
    FieldDef("period_seconds", ("livenessProbeRequirements", "periodSeconds"), 10, _K),
    FieldDef(
        "initial_delay_seconds", ("livenessProbeRequirements", "initialDelaySeconds"), 310, _K
    ),
    FieldDef("timeout_seconds", ("livenessProbeRequirements", "timeoutSeconds"), 2, _K),
    FieldDef("success_threshold", ("livenessProbeRequirements", "successThreshold"), 1, _K),
    FieldDef("failure_threshold", ("livenessProbeRequirements", "failureThreshold"), 3, _K),
    FieldDef("namespace", ("namespace",), None, _K),
    FieldDef("compute_target_name", ("computeTargetName",), None, (AKS,)),
    FieldDef("blobfuse_enabled", None, True, (AKS,)),
    FieldDef("tags", None, None, _KA),
    FieldDef("properties", None, None, _KA),
    FieldDef("description", None, None, _KA),
    FieldDef("version_name", ("versionName",), None, (ENDPOINT,)),
    FieldDef("traffic_percentile", ("trafficPercentile",), None, (ENDPOINT,)),
    FieldDef("port", ("port",), None, (LOCAL,)),
    FieldDef("location", ("location",), None, (ACI,)),
    FieldDef("ssl_enabled", ("sslEnabled",), False, (ACI,)),
    FieldDef("ssl_cert_pem_file", ("sslCertificate",), None, (ACI,)),
    FieldDef("ssl_key_pem_file", ("sslKey",), None, (ACI,)),
    FieldDef("ssl_cname", ("cname",), None, (ACI,)),
    FieldDef("dns_name_label", ("dnsNameLabel",), None, (ACI,)),
    FieldDef("cmk_vault_base_url", ("vaultBaseUrl",), None, (ACI,)),
    FieldDef("cmk_key_name", ("keyName",), None, (ACI,)),
    FieldDef("cmk_key_version", ("keyVersion",), None, (ACI,)),
    FieldDef("vnet_name", ("vnetName",), None, (ACI,)),
    FieldDef("subnet_name", ("subnetName",), None, (ACI,)),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}

_POSITIVE = (
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
    "num_replicas",
)
_AUTOSCALE = (
    "min_replicas",
    "max_replicas",
    "refresh_seconds",
    "target_utilization",
    "scale_down_window_seconds",
)
_PREFIX = "Invalid configuration, "

# Inclusive ranges.  v1 documents lower bounds only (checked above, with its own
# messages); the upper bounds are modelport's: durations up to one day, replicas,
# thresholds and concurrent requests up to 1000, resources up to a large machine.
_DAY_S = 86_400
_BOUNDS: dict[str, tuple[float, float]] = {
    "num_replicas": (1, 1000),
    "autoscale_min_replicas": (1, 1000),
    "autoscale_max_replicas": (1, 1000),
    "autoscale_refresh_seconds": (1, _DAY_S),
    "autoscale_scale_down_window_seconds": (1, _DAY_S),
    "scoring_timeout_ms": (1, _DAY_S * 1000),
    "max_request_wait_time": (1, _DAY_S * 1000),
    "replica_max_concurrent_requests": (1, 1000),
    "period_seconds": (1, _DAY_S),
    "initial_delay_seconds": (1, _DAY_S),
    "timeout_seconds": (1, _DAY_S),
    "success_threshold": (1, 1000),
    "failure_threshold": (1, 1000),
    "gpu_cores": (0, 64),
    "cpu_cores": (0.001, 1024),
    "cpu_cores_limit": (0.001, 1024),
    "memory_gb": (0.001, 16384),
    "memory_gb_limit": (0.001, 16384),
    "capture_sample_rate": (0, 1),
    "capture_max_bytes": (1, 100 * 1024 * 1024),
}
_MAX_KEY_LENGTH = 255  # the keys' database columns


class _DeploymentConfiguration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    compute_type: ClassVar[str]

    @classmethod
    def create(cls, values: Mapping[str, Any], *, keys: Mapping[str, str] | None = None) -> Self:
        """Validate SDK-style values; ``keys`` maps field names to file keys for messages."""
        keys = keys or {}
        try:
            config = cls.model_validate(dict(values))
        except PydanticValidationError as exc:
            lines = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "configuration"
                shown = keys.get(field, field)
                lines.append(f"{_PREFIX}{shown}: {err['msg']} (got {err.get('input')!r})")
            raise ConfigError("\n".join(lines)) from exc
        problems = config.problems()
        if problems:
            raise ConfigError("\n".join(_PREFIX + p for p in problems))
        return config

    def problems(self) -> list[str]:
        """Every v1 rule this configuration breaks, one message each."""
        return []

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def resolved(self) -> Self:
        """This configuration with the documented defaults filled in."""
        values = self.model_dump()
        for name, value in values.items():
            if value is None:
                values[name] = FIELDS_BY_NAME[name].default
        return self.model_validate(self._derive(values))

    def _derive(self, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def to_document(self) -> dict[str, Any]:
        """The given values in the camelCase shape of ``deploymentconfig.json``."""
        doc: dict[str, Any] = {"computeType": self.compute_type}
        for name, value in self.given().items():
            path = FIELDS_BY_NAME[name].path
            if path is None:
                continue
            node = doc
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return doc


def _with_value(message: str, value: Any) -> str:
    return f"{message} (got {value!r})"


class AksServiceDeploymentConfiguration(_DeploymentConfiguration):
    """``AksWebservice.deploy_configuration(...)``: a Kubernetes-style service."""

    compute_type: ClassVar[str] = AKS

    autoscale_enabled: Bool = None
    autoscale_min_replicas: Int = None
    autoscale_max_replicas: Int = None
    autoscale_refresh_seconds: Int = None
    autoscale_target_utilization: Int = None
    autoscale_scale_down_window_seconds: Int = None
    collect_model_data: Bool = None
    capture_sample_rate: Float = None
    capture_max_bytes: Int = None
    capture_redact: list[Annotated[str, Strict()]] | None = None
    auth_enabled: Bool = None
    token_auth_enabled: Bool = None
    cpu_cores: Float = None
    memory_gb: Float = None
    cpu_cores_limit: Float = None
    memory_gb_limit: Float = None
    gpu_cores: Int = None
    enable_app_insights: Bool = None
    scoring_timeout_ms: Int = None
    replica_max_concurrent_requests: Int = None
    max_request_wait_time: Int = None
    pipelining_enabled: Bool = None
    num_replicas: Int = None
    primary_key: Str = None
    secondary_key: Str = None
    period_seconds: Int = None
    initial_delay_seconds: Int = None
    timeout_seconds: Int = None
    success_threshold: Int = None
    failure_threshold: Int = None
    namespace: Str = None
    compute_target_name: Str = None
    blobfuse_enabled: Bool = None
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: Str = None

    def problems(self) -> list[str]:
        v = self.model_dump()
        out = [
            _with_value(f"{name} must be greater than zero.", v[name])
            for name in _POSITIVE
            if v[name] is not None and v[name] <= 0
        ]
        if v["gpu_cores"] is not None and v["gpu_cores"] < 0:
            out.append(
                _with_value("gpu_cores must be greater than or equal to zero.", v["gpu_cores"])
            )
        out += _limit_problems(v)
        if v["namespace"] is not None and not NAMESPACE_RE.match(v["namespace"]):
            out.append(
                "namespace must be a valid Kubernetes namespace. Regex for validation is "
                f"{NAMESPACE_RE.pattern} (got {v['namespace']!r})"
            )
        out += _autoscale_problems(v)
        out += _redaction_problems(v["capture_redact"])
        if v["auth_enabled"] and v["token_auth_enabled"]:
            out.append("auth_enabled and token_auth_enabled cannot both be true.")
        for key in ("primary_key", "secondary_key"):
            if v[key] is not None and len(v[key]) < 8:
                out.append(f"{key} must be at least 8 characters long.")
        return out + _bound_problems(v)

    def _derive(self, values: dict[str, Any]) -> dict[str, Any]:
        given = self.model_dump()
        if given["autoscale_enabled"] is None:
            values["autoscale_enabled"] = given["num_replicas"] is None
        if given["auth_enabled"] is None:
            values["auth_enabled"] = not values["token_auth_enabled"]
        return values


def _bound_problems(v: dict[str, Any]) -> list[str]:
    """Values outside :data:`_BOUNDS`; zero and below already have v1's messages."""
    out = []
    for name, (low, high) in _BOUNDS.items():
        value = v.get(name)
        if value is not None and not low <= value <= high and not value <= 0:  # NaN too
            out.append(_with_value(f"{name} must be between {low} and {high}.", value))
    for key in ("primary_key", "secondary_key"):
        if v.get(key) is not None and len(v[key]) > _MAX_KEY_LENGTH:
            out.append(
                f"{key} must be at most {_MAX_KEY_LENGTH} characters long "
                f"(got {len(v[key])} characters)."
            )
    return out


def _limit_problems(v: dict[str, Any]) -> list[str]:
    out = []
    for request, limit in (("cpu_cores", "cpu_cores_limit"), ("memory_gb", "memory_gb_limit")):
        effective = v[request] if v[request] is not None else FIELDS_BY_NAME[request].default
        if v[limit] is not None and v[limit] < effective:
            out.append(
                f"{limit} must be greater than or equal to {request}. "
                f"(got {limit}={v[limit]!r}, {request}={effective!r})"
            )
    return out


def _redaction_problems(rules: list[str] | None) -> list[str]:
    """Each capture redaction rule must be a JSONPath (``$.password``, ``$..ssn``)."""
    from jsonpath_ng.exceptions import JSONPathError
    from jsonpath_ng.ext.parser import parse

    out = []
    for rule in rules or []:
        try:
            parse(rule)
        except JSONPathError as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.append(f"capture_redact: {rule!r} is not a JSONPath ({why}).")
    return out


def _autoscale_problems(v: dict[str, Any]) -> list[str]:
    out = []
    if v["autoscale_enabled"]:
        if v["num_replicas"]:
            out.append("autoscale enabled and num_replicas provided.")
        for part in _AUTOSCALE:
            value = v[f"autoscale_{part}"]
            if value is not None and value <= 0:
                out.append(_with_value(f"autoscale_{part} must be greater than zero.", value))
        low = v["autoscale_min_replicas"] or FIELDS_BY_NAME["autoscale_min_replicas"].default
        high = v["autoscale_max_replicas"] or FIELDS_BY_NAME["autoscale_max_replicas"].default
        if low > high:
            out.append(
                "autoscale_min_replicas cannot be greater than autoscale_max_replicas. "
                f"(got min={low}, max={high})"
            )
        target = v["autoscale_target_utilization"]
        if target is not None and target > 100:
            out.append(_with_value("autoscale_target_utilization must be at most 100.", target))
    else:
        if v["autoscale_enabled"] is False and not v["num_replicas"]:
            out.append("autoscale disabled but num_replicas not provided.")
        for part in _AUTOSCALE:
            value = v[f"autoscale_{part}"]
            if value is not None:
                out.append(
                    _with_value(f"autoscale_{part} provided without enabling autoscaling.", value)
                )
    return out


class AksEndpointDeploymentConfiguration(AksServiceDeploymentConfiguration):
    """``AksEndpoint.deploy_configuration(...)``: one version of an endpoint."""

    compute_type: ClassVar[str] = ENDPOINT

    version_name: Str = None
    traffic_percentile: Int = None

    def problems(self) -> list[str]:
        out = super().problems()
        if self.blobfuse_enabled is not None or self.compute_target_name is not None:
            out.append("blobfuse_enabled and compute_target_name do not apply to endpoints.")
        name = self.version_name
        if name is not None and not (3 <= len(name) <= 32 and SERVICE_NAME_RE.match(name)):
            out.append(f"version_name: {SERVICE_NAME_MESSAGE} (got {name!r})")
        tp = self.traffic_percentile
        if tp is not None and not 0 <= tp <= 100:
            out.append(
                _with_value("traffic_percentile cannot be negative or greater than 100.", tp)
            )
        return out


class LocalWebserviceDeploymentConfiguration(_DeploymentConfiguration):
    """``LocalWebservice.deploy_configuration(port=None)``: one replica on a fixed port."""

    compute_type: ClassVar[str] = LOCAL

    port: Int = None

    def problems(self) -> list[str]:
        if self.port is not None and not 1 <= self.port <= 65535:
            return [_with_value("port must be an integer in range [1, 65535]", self.port)]
        return []


class AciServiceDeploymentConfiguration(_DeploymentConfiguration):
    """``AciWebservice.deploy_configuration(...)``: v1's single container instance.

    modelport runs it on the local target as a single-replica service; auth is off
    unless asked for, as on ACI.
    """

    compute_type: ClassVar[str] = ACI

    cpu_cores: Float = None
    memory_gb: Float = None
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    description: Str = None
    location: Str = None
    auth_enabled: Bool = None
    ssl_enabled: Bool = None
    enable_app_insights: Bool = None
    ssl_cert_pem_file: Str = None
    ssl_key_pem_file: Str = None
    ssl_cname: Str = None
    dns_name_label: Str = None
    primary_key: Str = None
    secondary_key: Str = None
    collect_model_data: Bool = None
    cmk_vault_base_url: Str = None
    cmk_key_name: Str = None
    cmk_key_version: Str = None
    vnet_name: Str = None
    subnet_name: Str = None

    def problems(self) -> list[str]:
        v = self.model_dump()
        out = [
            _with_value(f"{name} must be positive.", v[name])
            for name in ("cpu_cores", "memory_gb")
            if v[name] is not None and v[name] <= 0
        ]
        if v["ssl_enabled"] and not (
            v["ssl_cert_pem_file"] and v["ssl_key_pem_file"] and v["ssl_cname"]
        ):
            out.append("SSL is enabled, you must provide a SSL certificate, key, and cname.")
        cmk = [v["cmk_vault_base_url"], v["cmk_key_name"], v["cmk_key_version"]]
        if any(cmk) and not all(cmk):
            out.append(
                "customer managed key vault_base_url, key_name and key_version must all "
                "have values or all are empty/null"
            )
        if bool(v["vnet_name"]) != bool(v["subnet_name"]):
            out.append("vnet_name and subnet_name must all have values or both are empty/null")
        out += _bound_problems(v)
        return out

    def _derive(self, values: dict[str, Any]) -> dict[str, Any]:
        if self.auth_enabled is None:
            values["auth_enabled"] = False  # ACI's default, unlike AKS
        return values


DeploymentConfiguration = (
    AksServiceDeploymentConfiguration
    | AksEndpointDeploymentConfiguration
    | LocalWebserviceDeploymentConfiguration
    | AciServiceDeploymentConfiguration
)
_CLASSES: dict[str, type[_DeploymentConfiguration]] = {
    AKS: AksServiceDeploymentConfiguration,
    ENDPOINT: AksEndpointDeploymentConfiguration,
    LOCAL: LocalWebserviceDeploymentConfiguration,
    ACI: AciServiceDeploymentConfiguration,
}


def _key_tree(kind: str) -> dict[str, Any]:
    """Nested file keys → field names for one compute type."""
    tree: dict[str, Any] = {}
    for f in FIELDS:
        if f.path is None or kind not in f.kinds:
            continue
        node = tree
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
        node[f.path[-1]] = f.name
    return tree


def deployment_config_from_document(
    doc: Mapping[str, Any], filename: str = "deploymentconfig.json"
) -> DeploymentConfiguration:
    """Build a configuration from a parsed ``deploymentconfig.json``/``.yml``."""
    raw_type = doc.get("computeType")
    if raw_type is None:
        raise ConfigError(f"{filename}: Need to specify computeType in --deploy-config-file")
    kind = str(raw_type).lower()
    if kind not in _CLASSES:
        raise ConfigError(
            f"{filename}: unknown deployment type: {raw_type}",
            hint=f"computeType must be one of: {', '.join(COMPUTE_TYPES)}",
        )
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    errors: list[str] = []
    rest = {k: v for k, v in doc.items() if k != "computeType"}
    _walk(rest, _key_tree(kind), (), values, keys, errors)
    if errors:
        raise ConfigError(f"{filename}: " + f"\n{filename}: ".join(errors))
    try:
        return _CLASSES[kind].create(values, keys=keys)  # type: ignore[return-value]
    except ConfigError as exc:
        raise ConfigError(f"{filename}: " + exc.message.replace("\n", f"\n{filename}: ")) from exc


def _walk(
    doc: Mapping[str, Any],
    tree: Mapping[str, Any],
    prefix: tuple[str, ...],
    values: dict[str, Any],
    keys: dict[str, str],
    errors: list[str],
) -> None:
    where = ".".join(prefix) or "the top level"
    for key, value in doc.items():
        target = tree.get(key)
        if target is None:
            errors.append(unknown_key_message(str(key), tree, where))
        elif isinstance(target, dict):
            if value is not None:
                _walk(
                    check_mapping(value, ".".join((*prefix, key))),
                    target,
                    (*prefix, key),
                    values,
                    keys,
                    errors,
                )
        else:
            values[target] = value
            keys[target] = ".".join((*prefix, key))


def auth_update(
    key_auth_now: bool, auth_enabled: bool | None, token_auth_enabled: bool | None
) -> dict[str, bool]:
    """v1's update rules for the two exclusive auth modes: the settings an update sets.

    Turning keys on turns tokens off; turning tokens on needs keys turned off in the
    same update (v1 refuses it otherwise rather than guess).
    """
    if auth_enabled and token_auth_enabled:
        raise ConfigError("Error, cannot set both token_auth_enabled and auth_enabled.")
    if token_auth_enabled and key_auth_now and auth_enabled is not False:
        raise ConfigError(
            "Error, cannot set token_auth_enabled without disabling key auth "
            "(set auth_enabled to False)."
        )
    out: dict[str, bool] = {}
    if auth_enabled is not None:
        out["auth_enabled"] = auth_enabled
        if auth_enabled:
            out["token_auth_enabled"] = False
    if token_auth_enabled is not None:
        out["token_auth_enabled"] = token_auth_enabled
    return out
