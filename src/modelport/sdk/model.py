"""``Model``: register, find, download and delete model versions (v1 names)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelport.errors import InvalidInputError, ModelportError
from modelport.sdk.client import collect_files
from modelport.sdk.resources import PROPERTY as RESOURCE_PROPERTY
from modelport.sdk.resources import ResourceConfiguration
from modelport.sdk.uploads import upload_file
from modelport.sdk.workspace import Workspace
from modelport.spec.deployment import DeploymentConfiguration
from modelport.spec.model import ModelFile, ModelRegistration, check_relative_path
from modelport.spec.names import check_model_name, check_service_name, parse_model_id

if TYPE_CHECKING:
    from modelport.sdk.compute import ComputeTarget
    from modelport.sdk.inference import InferenceConfig
    from modelport.sdk.webservice import Webservice

TagFilter = Mapping[str, str | None] | Sequence[str | Sequence[str]]


class _Framework:
    """``Model.Framework``: the v1 framework constants (values of ``model_framework``)."""

    CUSTOM = "Custom"
    TENSORFLOW = "TensorFlow"
    SCIKITLEARN = "ScikitLearn"
    ONNX = "Onnx"
    TFKERAS = "TfKeras"
    PYTORCH = "PyTorch"
    MULTI = "Multi"


class Model:
    """One registered model version.

    ``Model(workspace, name)`` is the latest version, ``Model(workspace, name,
    version=3)`` or ``Model(workspace, id="name:3")`` a given one.
    """

    Framework = _Framework

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        version: int | None = None,
        *,
        _data: Mapping[str, Any] | None = None,
    ) -> None:
        self.workspace = workspace
        if _data is None:
            if id is not None:
                name, id_version = parse_model_id(id)
                version = version or id_version
            if name is None:
                raise InvalidInputError("Model needs a name or an id")
            check_model_name(name)
            path = _model_path(name, version)
            _data = workspace.client.call("GET", path)
        self._load(_data or {})

    def _load(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self.name: str = data["name"]
        self.version: int = data["version"]
        self.id: str = data["id"]
        self.description: str | None = data.get("description")
        self.tags: dict[str, str] = dict(data.get("tags") or {})
        self.properties: dict[str, str] = dict(data.get("properties") or {})
        self.model_framework: str | None = data.get("modelFramework")
        self.model_framework_version: str | None = data.get("modelFrameworkVersion")
        self.created_time: str = data["createdTime"]
        self.basename: str = data["basename"]
        self.files = [ModelFile.model_validate(f) for f in data.get("files", [])]

    @property
    def resource_configuration(self) -> ResourceConfiguration | None:
        """What ``Model.register(resource_configuration=...)`` recorded (read-only)."""
        stored = self.properties.get(RESOURCE_PROPERTY)
        return None if stored is None else ResourceConfiguration.deserialize(json.loads(stored))

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        resource_configuration: ResourceConfiguration | None = None,
    ) -> Model:
        """Upload a file or folder and register it as the next version of ``model_name``.

        Files are streamed, and content the server already holds is not sent again.
        The version exists only once every file has arrived.  A
        ``resource_configuration`` is kept as the model property
        ``modelport.resourceConfiguration`` (see :mod:`modelport.sdk.resources`).
        """
        root = Path(model_path)
        check_model_name(model_name)
        properties = dict(properties or {})
        if resource_configuration is not None:
            if not isinstance(resource_configuration, ResourceConfiguration):
                raise InvalidInputError(
                    "resource_configuration must be a "
                    "ResourceConfiguration(cpu=, memory_in_gb=, gpu=)"
                )
            properties[RESOURCE_PROPERTY] = resource_configuration.to_property()
        files = collect_files(root)
        manifest = [upload_file(workspace, path, rel) for rel, path in files]
        reg = ModelRegistration(
            name=model_name,
            kind="file" if root.is_file() else "folder",
            basename=root.name,
            files=manifest,
            description=description,
            tags=dict(tags or {}),
            properties=properties,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
        )
        reg.check()
        data = workspace.client.call("POST", "/api/v1/models", json=reg.model_dump())
        return Model(workspace, _data=data)

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: TagFilter | None = None,
        properties: TagFilter | None = None,
        latest: bool = False,
    ) -> list[Model]:
        """Versions whose tags/properties match; v1 style filters are accepted:
        ``["key"]``, ``[["key", "value"]]`` or ``{"key": "value"}``."""
        params: dict[str, Any] = {
            "tag": _filters(tags),
            "property": _filters(properties),
            "latest": latest,
        }
        if name is not None:
            params["name"] = name
        data = workspace.client.call("GET", "/api/v1/models", params=params)
        return [Model(workspace, _data=item) for item in data["value"]]

    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: Sequence[Model],
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        deployment_target: str | ComputeTarget | None = None,
        overwrite: bool = False,
    ) -> Webservice:
        """Deploy ``models`` as web service ``name``; returns at once (see wait_for_deployment).

        With ``AksEndpoint.deploy_configuration(...)`` it makes an endpoint with that
        version and returns the ``AksEndpoint``, as v1 does."""
        from modelport.sdk.endpoint import deploy_endpoint
        from modelport.sdk.webservice import deploy_service
        from modelport.spec.deployment import AksEndpointDeploymentConfiguration

        if inference_config is None:
            raise InvalidInputError("modelport needs an inference_config (entry script) to deploy")
        check_service_name(name)
        # v1's Model.deploy turns legacy parts (runtime, conda_file) into "<name>-env".
        converted = inference_config.for_service(name)
        if isinstance(deployment_config, AksEndpointDeploymentConfiguration):
            return deploy_endpoint(
                workspace,
                name,
                models,
                converted,
                deployment_config,
                deployment_target,
                overwrite,
            )
        service = deploy_service(
            workspace,
            name,
            models,
            converted,
            deployment_config,
            deployment_target,
            overwrite,
        )
        from modelport.sdk.webservice import LocalWebservice

        if isinstance(service, LocalWebservice):
            service._deployed_with(converted)  # reload() re-sends this configuration
        return service

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False) -> str:
        """Download into ``target_dir``; returns the path of the file or folder."""
        target_root = Path(target_dir)
        destination = target_root / self.basename
        if destination.exists() and not exist_ok:
            raise InvalidInputError(
                f"File already exists: {destination}. Set exist_ok=True to overwrite it."
            )
        target_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".modelport-download-", dir=target_root))
        try:
            for entry in self.files:
                self._download_file(entry, staging)
            if self._data.get("kind") == "folder":
                (staging / self.basename).mkdir(exist_ok=True)  # an empty folder model
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            elif destination.is_symlink() or destination.exists():
                destination.unlink()
            os.replace(staging / self.basename, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return str(destination)

    def _download_file(self, entry: ModelFile, staging: Path) -> None:
        check_relative_path(entry.path)
        target = staging / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"{_model_path(self.name, self.version)}/files/{quote(entry.path)}"
        with target.open("wb") as f:
            digest = self.workspace.client.download(url, f)
        if digest != entry.sha256:
            raise ModelportError(f"{entry.path} arrived corrupted (sha256 {digest})")

    def add_tags(self, tags: Mapping[str, str]) -> None:
        self._patch(addTags=dict(tags))

    def remove_tags(self, tags: Iterable[str]) -> None:
        self._patch(removeTags=list(tags))

    def add_properties(self, properties: Mapping[str, str]) -> None:
        self._patch(addProperties=dict(properties))

    def update(self, description: str | None = None) -> None:
        self._patch(description=description)

    def delete(self) -> None:
        self.workspace.client.call("DELETE", _model_path(self.name, self.version))

    def serialize(self) -> dict[str, Any]:
        return dict(self._data)

    def _patch(self, **changes: Any) -> None:
        data = self.workspace.client.call(
            "PATCH", _model_path(self.name, self.version), json=changes
        )
        self._load(data)

    def __repr__(self) -> str:
        return f"Model(workspace={self.workspace!r}, name={self.name!r}, id={self.id!r})"


def _model_path(name: str, version: int | None) -> str:
    base = f"/api/v1/models/{quote(name)}"
    return base if version is None else f"{base}/versions/{version}"


def _filters(value: TagFilter | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, Mapping):
        return [k if v is None else f"{k}={v}" for k, v in value.items()]
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif len(item) == 2:
            out.append(f"{item[0]}={item[1]}")
        else:
            raise InvalidInputError(f"tag filter {item!r} must be a key or a [key, value] pair")
    return out
