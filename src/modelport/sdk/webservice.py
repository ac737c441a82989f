"""Web services with the v1 names: ``Webservice``, ``AksWebservice``, ``LocalWebservice``.

``Webservice(workspace, name)`` returns the subclass for the service's compute
type, as v1 does.  ``deploy_configuration`` factories validate as v1 does.
"""

from __future__ import annotations

import builtins
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from modelport.errors import (
    InvalidInputError,
    ModelportError,
    NotFoundError,
    ScoringError,
    ServerUnavailableError,
)
from modelport.sdk.kinds import new_by_type
from modelport.sdk.tls import tls_failure
from modelport.sdk.uploads import source_files, upload_snapshot
from modelport.sdk.workspace import Workspace
from modelport.spec.compute import LOCAL
from modelport.spec.deployment import (
    AciServiceDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
    auth_update,
)
from modelport.spec.names import check_service_name
from modelport.spec.support import BLOBFUSE_WARNING

if TYPE_CHECKING:
    from modelport.sdk.compute import ComputeTarget
    from modelport.sdk.inference import InferenceConfig
    from modelport.sdk.model import Model

POLL_S = 0.25
PROGRESS_EVERY_S = 10.0  # how often wait_for_deployment repeats what a roll-out waits for


# v1 raised WebserviceException; the SDK's name for a failed scoring call.
WebserviceError = ScoringError


@dataclass(frozen=True)
class AksServiceAccessToken:
    """A scoring token as v1's ``get_access_token`` gives it (times in epoch seconds):
    send it as ``Authorization: Bearer <access_token>``, get a new one after
    ``refresh_after``; it is refused from ``expiry_on``."""

    access_token: str
    token_type: str
    refresh_after: int
    expiry_on: int

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> AksServiceAccessToken:
        return cls(
            str(data["accessToken"]),
            str(data["tokenType"]),
            int(data["refreshAfter"]),
            int(data["expiryOn"]),
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "tokenType": self.token_type,
            "refreshAfter": self.refresh_after,
            "expiryOn": self.expiry_on,
        }

    def __repr__(self) -> str:  # never the token itself
        return f"AksServiceAccessToken(token_type={self.token_type!r}, expiry_on={self.expiry_on})"


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _path(name: str) -> str:
    return f"/api/v1/services/{quote(name)}"


class Webservice:
    """A deployed service. ``Webservice(ws, name)`` loads it; ``Webservice.list(ws)`` all."""

    _prefetched: dict[str, Any] | None = None
    _token: AksServiceAccessToken | None = None  # the last one got, reused until refresh_after
    _collection = "/api/v1/services"  # where the management API keeps this kind
    _noun = "service"

    def __new__(cls, workspace: Workspace, name: str, _data: dict[str, Any] | None = None) -> Any:
        def fetch() -> dict[str, Any]:
            if _data:
                return _data
            try:
                data: dict[str, Any] = workspace.client.call("GET", _path(name))
            except NotFoundError as missing:
                # v1's Webservice(ws, name) finds endpoints too (computeType AKSENDPOINT).
                from modelport.sdk.endpoint import AksEndpoint

                _CLASSES.setdefault("AKSENDPOINT", AksEndpoint)
                try:
                    data = workspace.client.call("GET", f"/api/v1/endpoints/{quote(name)}")
                except NotFoundError:
                    raise missing from None
            return data

        return new_by_type(cls, Webservice, fetch, _CLASSES, AksWebservice)

    def __init__(
        self, workspace: Workspace, name: str, _data: dict[str, Any] | None = None
    ) -> None:
        self.workspace = workspace
        self.name = check_service_name(name)
        data = (
            _data or getattr(self, "_prefetched", None) or workspace.client.call("GET", self._url())
        )
        self._load(data)

    def _load(self, data: dict[str, Any]) -> None:
        self._data = data
        self.state: str = data["state"]
        self.error: str | None = data.get("error")
        self.scoring_uri: str = data["scoringUri"]
        self.swagger_uri: str = data["swaggerUri"]
        self.compute_type: str = data["computeType"]
        self.auth_enabled: bool = data["authEnabled"]
        self.token_auth_enabled: bool = bool(data.get("tokenAuthEnabled", False))
        self.models: list[str] = data["models"]
        self.created_time: str = data["createdTime"]
        self.updated_time: str = data["updatedTime"]
        self.tags: dict[str, str] = dict(data.get("tags") or {})
        self.properties: dict[str, str] = dict(data.get("properties") or {})
        self.description: str | None = data.get("description")
        self.warnings: list[str] = list(data.get("warnings") or [])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, state={self.state!r})"

    def _url(self) -> str:
        return f"{self._collection}/{quote(self.name)}"

    # -- state ---------------------------------------------------------------------
    def update_deployment_state(self) -> None:
        self._load(self.workspace.client.call("GET", self._url()))

    def serialize(self) -> dict[str, Any]:
        return dict(self._data)

    def wait_for_deployment(
        self, show_output: bool = False, timeout_sec: float | None = None
    ) -> None:
        """Poll until the latest change is rolled out; raises if it failed."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        shown = 0
        said: set[str] = set()  # what the output showed, so the error does not repeat it
        said_progress = 0.0
        while True:
            self.update_deployment_state()
            status = self._data["deploymentStatus"]
            messages = status["messages"]
            progress = status.get("progress")
            if show_output:
                for line in messages[shown:]:
                    print(line, file=sys.stderr)
                    said.add(line.split(" ", 1)[-1].strip())  # without its time
                shown = len(messages)
                if progress and time.monotonic() - said_progress >= PROGRESS_EVERY_S:
                    print(f"{time.strftime('%H:%M:%S')} {progress}", file=sys.stderr)
                    said_progress = time.monotonic()
            settled = status["applied"] == status["generation"] and self.state != "Transitioning"
            if settled:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ModelportError(
                    f"Deployment polling exceeded timeout override of {timeout_sec}s"
                    + (f"; {progress}" if progress else ""),
                    hint=f"modelport service logs -n {self.name}",
                )
            time.sleep(POLL_S)
        if self.state in ("Failed", "Unschedulable"):
            error = "\n".join(
                line for line in (self.error or "").splitlines() if line.strip() not in said
            )
            raise ModelportError(
                "Service deployment polling reached non-successful terminal state, current "
                f"service state: {self.state}\n{error}".rstrip(),
                hint=f"modelport service logs -n {self.name}",
            )
        if show_output:
            print(
                f'{self.compute_type} service creation operation finished, operation "Succeeded"',
                file=sys.stderr,
            )

    # -- scoring -------------------------------------------------------------------
    def run(self, input_data: Any) -> Any:
        """Score: POST ``input_data`` (a JSON string, or data to encode) with the key."""
        return self._score(input_data, {})

    def _score(self, input_data: Any, extra: dict[str, str]) -> Any:
        """POST with the primary key or a token; on a 401 the credential is fetched again
        and the request retried once (v1's: a token may expire, a key be regenerated)."""
        body = input_data if isinstance(input_data, str | bytes) else json.dumps(input_data)
        headers = {"Content-Type": "application/json", "Accept": "application/json", **extra}
        response = self._post(body, headers, self._credential(fresh=False))
        if response.status_code == 401 and (self.auth_enabled or self.token_auth_enabled):
            response = self._post(body, headers, self._credential(fresh=True))
        if response.status_code != 200:
            raise WebserviceError(
                f"Received bad response from service. Response Code: {response.status_code}\n"
                f"Content: {response.text}",
                response.status_code,
                response.text,
            )
        return response.json()

    def _post(
        self, body: str | bytes, headers: dict[str, str], credential: str | None
    ) -> httpx.Response:
        if credential is not None:
            headers = {**headers, "Authorization": f"Bearer {credential}"}
        try:
            return httpx.post(
                self.scoring_uri,
                content=body,
                headers=headers,
                timeout=None,
                verify=self.workspace.verify,
            )
        except httpx.TransportError as exc:
            refused = tls_failure(exc, self.scoring_uri)
            if refused is not None:
                raise refused from exc
            raise ServerUnavailableError(f"cannot reach {self.scoring_uri}: {exc}") from exc

    def _credential(self, fresh: bool) -> str | None:
        if self.token_auth_enabled:
            token = self._token
            if fresh or token is None or time.time() >= token.refresh_after:
                token = self.get_access_token()
            return token.access_token
        if self.auth_enabled:
            return self.get_keys()[0]
        return None

    # -- tokens --------------------------------------------------------------------
    def get_access_token(self) -> AksServiceAccessToken:
        """A new scoring token for a token-auth service (v1's); ``run`` uses and renews
        one by itself."""
        data = self.workspace.client.call("POST", f"{self._url()}/token")
        self._token = AksServiceAccessToken.deserialize(data)
        return self._token

    def get_token(self) -> tuple[str, int]:
        """v1's older form: ``(token, refresh_by)``, the time in epoch seconds."""
        token = self.get_access_token()
        return token.access_token, token.refresh_after

    # -- operations ----------------------------------------------------------------
    def get_logs(
        self,
        num_lines: int = 5000,
        init: bool = False,
        *,
        replica: int | None = None,
        since: str | None = None,
        tail: int | None = None,
    ) -> str:
        """The replicas' logs (``init``: v1's init-container logs, which share the
        replicas' files here).  With ``replica`` (an index), ``since`` (``10m``) or
        ``tail``, their lines merged, each after ``[replica-<n>]``."""
        params = _given(dict(num_lines=num_lines, replica=replica, since=since, tail=tail))
        data = self.workspace.client.call("GET", f"{self._url()}/logs", params=params)
        return str(data["logs"])

    def follow_logs(
        self, replica: int | None = None, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        """The merged lines of ``get_logs(replica=..., ...)``, then each new one as a
        replica writes it; the iterator goes on until closed."""
        params = _given(dict(follow="true", replica=replica, since=since, tail=tail))
        return self.workspace.client.stream_lines(f"{self._url()}/logs", params)

    def get_requests(
        self, status: str | None = None, since: str | None = None, tail: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The router's log of this service's scoring requests, oldest first: time,
        status, latencyMs, queueWaitMs, replica, bytesIn/Out, requestId,
        clientRequestId.  ``status``: ``5xx``, ``4xx`` or one (``200``); ``since``: ``10m``."""
        params = _given(dict(status=status, since=since, tail=tail))
        # The services route: it takes an endpoint's name too (its lines name the version).
        data = self.workspace.client.call("GET", f"{_path(self.name)}/requests", params=params)
        return builtins.list(data["value"])

    def follow_requests(
        self, status: str | None = None, since: str | None = None, tail: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """``get_requests``' lines, then each request as it is answered, until closed."""
        params = _given(dict(follow="true", status=status, since=since, tail=tail))
        lines = self.workspace.client.stream_lines(f"{_path(self.name)}/requests", params)
        return (json.loads(line) for line in lines if line)

    def get_scaling_events(self) -> builtins.list[dict[str, Any]]:
        """Every autoscaling change of the replica count, with the inputs it was made on."""
        data = self.workspace.client.call("GET", f"{self._url()}/events")
        return list(data["value"])

    def get_keys(self) -> tuple[str, str]:
        data = self.workspace.client.call("GET", f"{self._url()}/keys")
        return data["primaryKey"], data["secondaryKey"]

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        body = {"keyType": key} if set_key is None else {"keyType": key, "keyValue": set_key}
        self.workspace.client.call("POST", f"{self._url()}/regenerateKeys", json=body)

    def update(
        self,
        models: Sequence[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        **settings: Any,
    ) -> None:
        """Roll out a change; ``settings`` are deploy_configuration arguments to change.

        ``tags`` (replacing them), ``properties`` (added; a set key never changes) and
        ``description`` alone change no replica.
        """
        body: dict[str, Any] = _metadata(settings)
        if deployment_config is not None:
            body.update(_metadata(deployment_config.given()))
            deployment_config = deployment_config.model_copy(update=dict.fromkeys(_METADATA))
        if models is not None:
            body["models"] = [m.id for m in models]
        if inference_config is not None:
            body.update(_inference_body(self.workspace, inference_config, self.name))
        settings = {k: v for k, v in settings.items() if k not in _METADATA}
        if "auth_enabled" in settings or "token_auth_enabled" in settings:
            settings.update(
                auth_update(
                    self.auth_enabled,
                    settings.pop("auth_enabled", None),
                    settings.pop("token_auth_enabled", None),
                )
            )
        if settings:
            changes = {
                **(deployment_config.given() if deployment_config else {}),
                **_given(settings),
            }
            deployment_config = AksServiceDeploymentConfiguration.create(
                merge_settings(_current_given(self._data), changes)
            )
        if deployment_config is not None and deployment_config.given():
            body["deploymentConfig"] = _config_document(deployment_config)
        if not body:
            raise InvalidInputError("No parameters provided to update.")
        self._load(self.workspace.client.call("PATCH", self._url(), json=body))

    def add_tags(self, tags: dict[str, str]) -> None:
        self.update(tags={**self.tags, **tags})

    def remove_tags(self, tags: builtins.list[str]) -> None:
        self.update(tags={k: v for k, v in self.tags.items() if k not in set(tags)})

    def add_properties(self, properties: dict[str, str]) -> None:
        self.update(properties=properties)

    def delete(self, wait: bool = True, timeout_sec: float | None = None) -> None:
        """Delete it; as v1's, returns once it is gone (its replicas drained)."""
        self.workspace.client.call("DELETE", self._url())
        self.state = "Deleting"
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while wait:
            try:
                self.workspace.client.call("GET", self._url())
            except NotFoundError:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise ModelportError(
                    f"{self._noun} {self.name} is still being deleted after {timeout_sec}s",
                    hint=f"modelport {self._noun} show -n {self.name}",
                )
            time.sleep(POLL_S)

    @staticmethod
    def list(
        workspace: Workspace,
        compute_type: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        tags: Sequence[str | Sequence[str]] | None = None,
        properties: Sequence[str | Sequence[str]] | None = None,
    ) -> builtins.list[Webservice]:
        """Services, filtered as v1's: compute type, model, tags and properties
        (``["key"]`` or ``[["key", "value"]]``)."""
        from modelport.sdk.endpoint import AksEndpoint

        _CLASSES.setdefault("AKSENDPOINT", AksEndpoint)
        every = workspace.client.call("GET", "/api/v1/services")["value"]
        every += workspace.client.call("GET", "/api/v1/endpoints")["value"]  # v1 lists them too
        items = [i for i in every if _matches(i, compute_type, model_name, model_id)]
        items = [i for i in items if _has(i["tags"], tags) and _has(i["properties"], properties)]
        return [Webservice(workspace, item["name"], _data=item) for item in items]


class AksWebservice(Webservice):
    @staticmethod
    def deploy_configuration(
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
        compute_target_name: str | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        blobfuse_enabled: bool | None = None,
        capture_sample_rate: float | None = None,
        capture_max_bytes: int | None = None,
        capture_redact: builtins.list[str] | None = None,
        pipelining_enabled: bool | None = None,
    ) -> AksServiceDeploymentConfiguration:
        return AksServiceDeploymentConfiguration.create(_given(locals()))


class LocalWebservice(Webservice):
    # The InferenceConfig the service was deployed or last updated with (reload sends it).
    _inference_config: InferenceConfig | None = None

    @staticmethod
    def deploy_configuration(port: int | None = None) -> LocalWebserviceDeploymentConfiguration:
        return LocalWebserviceDeploymentConfiguration.create(_given({"port": port}))

    def _deployed_with(self, inference_config: InferenceConfig) -> None:
        self._inference_config = inference_config

    def update(
        self,
        models: Sequence[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        **settings: Any,
    ) -> None:
        """As ``Webservice.update``; a legacy inference config becomes ``<name>-env``, and
        the configuration is kept for :meth:`reload`."""
        converted = None if inference_config is None else inference_config.for_service(self.name)
        super().update(models, converted, deployment_config, **settings)
        if converted is not None:
            self._inference_config = converted

    def reload(self, wait: bool = False) -> None:
        """Re-copy the code and restart, without rebuilding (v1's ``reload``).

        The source directory of the InferenceConfig this object deployed or last updated
        the service with is uploaded again and rolled out with the same environment.
        """
        config = self._inference_config
        if config is None:
            raise InvalidInputError(
                f"reload needs the InferenceConfig service {self.name!r} runs: this object "
                "did not deploy or update it; call update(inference_config=...) instead"
            )
        body = _inference_body(self.workspace, config, self.name)
        self._load(self.workspace.client.call("PATCH", self._url(), json=body))
        if wait:
            self.wait_for_deployment()


class AciWebservice(Webservice):
    """v1's Azure Container Instances service; modelport runs it on the local target as a
    single-replica service."""

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        location: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        enable_app_insights: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        dns_name_label: str | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        collect_model_data: bool | None = None,
        cmk_vault_base_url: str | None = None,
        cmk_key_name: str | None = None,
        cmk_key_version: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
    ) -> AciServiceDeploymentConfiguration:
        config = AciServiceDeploymentConfiguration.create(_given(locals()))
        if config.ssl_enabled:
            for what, path in (("cert", ssl_cert_pem_file), ("key", ssl_key_pem_file)):
                if path and not Path(path).exists():
                    raise InvalidInputError(
                        f"Error, unable to find SSL {what} pem file provided paths:\n{path}"
                    )
        return config


_METADATA = ("tags", "properties", "description")


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in _METADATA if values.get(k) is not None}


def _matches(
    item: dict[str, Any], compute_type: str | None, model_name: str | None, model_id: str | None
) -> bool:
    if compute_type is not None and item["computeType"].lower() != compute_type.lower():
        return False
    models = item["models"]
    if model_id is not None and model_id not in models:
        return False
    return model_name is None or any(m.rpartition(":")[0] == model_name for m in models)


def _has(values: dict[str, str], wanted: Sequence[str | Sequence[str]] | None) -> bool:
    for item in wanted or []:
        if isinstance(item, str):
            if item not in values:
                return False
        elif values.get(item[0]) != item[1]:
            return False
    return True


def _config_document(config: DeploymentConfiguration) -> dict[str, Any]:
    doc = config.to_document()
    if isinstance(config, AksServiceDeploymentConfiguration) and (
        config.primary_key or config.secondary_key
    ):
        doc["keys"] = {
            k: v
            for k, v in (("primaryKey", config.primary_key), ("secondaryKey", config.secondary_key))
            if v
        }
    return doc


def _current_given(data: dict[str, Any]) -> dict[str, Any]:
    from modelport.spec.deployment import deployment_config_from_document

    return deployment_config_from_document(data["specifiedDeploymentConfig"]).given()


_AUTOSCALE_KEYS = (
    "autoscale_min_replicas",
    "autoscale_max_replicas",
    "autoscale_refresh_seconds",
    "autoscale_target_utilization",
    "autoscale_scale_down_window_seconds",
)


def merge_settings(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A service's settings with ``changes`` applied; switching between a fixed and an
    autoscaled replica count drops the other mode's settings, which v1 would refuse."""
    merged = {**current, **changes}
    if changes.get("autoscale_enabled") is True:
        merged.pop("num_replicas", None)
    if "num_replicas" in changes:
        for key in _AUTOSCALE_KEYS:
            if key not in changes:
                merged.pop(key, None)
        merged.setdefault("autoscale_enabled", False)
        if changes.get("autoscale_enabled") is None:
            merged["autoscale_enabled"] = False
    return merged


def _inference_body(
    workspace: Workspace, config: InferenceConfig, service_name: str | None = None
) -> dict[str, Any]:
    """Upload the source directory (or the lone entry script) and describe it.

    A legacy configuration (``runtime``/``conda_file``) is sent as v1 deploys it: with
    an environment ``<service>-env`` made from the conda file.
    """
    if config.spec.is_legacy:
        # Callers that do not pass the service's name get one from the conda file's.
        fallback = Path(config.spec.conda_file or config.entry_script).stem.replace("_", "-")
        config = config.for_service(service_name or fallback.lower())
    if config.source_directory:
        root = Path(config.source_directory)
        basename = root.resolve().name
        files = source_files(root)
        doc = config.serialize()
        doc["sourceDirectory"] = basename
    else:
        script = Path(config.entry_script)
        files = [(script.name, script)]
        basename = ""
        doc = config.serialize()
        doc["entryScript"] = script.name
    snapshot = upload_snapshot(workspace, basename, files)
    return {"inferenceConfig": doc, "snapshot": snapshot}


_CLASSES: dict[str, type[Webservice]] = {
    "Local": LocalWebservice,
    "ACI": AciWebservice,
    "AKS": AksWebservice,
}


def deploy_service(
    workspace: Workspace,
    name: str,
    models: Sequence[Model],
    inference_config: InferenceConfig,
    deployment_config: DeploymentConfiguration | None,
    deployment_target: str | ComputeTarget | None,
    overwrite: bool,
) -> Webservice:
    check_service_name(name)
    # v1 passes the target object (AksCompute); the server says what it can run where.
    target = getattr(deployment_target, "name", deployment_target)
    config = deployment_config or AksServiceDeploymentConfiguration.create({})
    body = {
        **({"computeTarget": target} if target not in (None, LOCAL) else {}),
        "name": name,
        "models": [m.id for m in models],
        "deploymentConfig": _config_document(config),
        "overwrite": overwrite,
        **_metadata(config.given()),
        **_inference_body(workspace, inference_config, name),
    }
    data = workspace.client.call("POST", "/api/v1/services", json=body)
    service = Webservice(workspace, name, _data=data)
    notes = list(service.warnings)
    if getattr(config, "blobfuse_enabled", None) is not None:
        notes.append(BLOBFUSE_WARNING)
    for note in notes:  # as v1's SDK, deploy speaks on the console
        print(f"Warning: {note}", file=sys.stderr)
    return service
