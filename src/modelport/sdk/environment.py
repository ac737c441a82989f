"""``Environment``: what a replica's Python needs, registered by name and version.

As in v1, an environment is built up by assignment after construction::

    env = Environment("my-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["scikit-learn"])
    env.environment_variables["MODE"] = "fast"
    env.docker.base_image = "..."

Each assignment is checked when it is made (a wrong value raises ``ConfigError``
there, not at deploy), and ``env.python.conda_dependencies`` is always a
``CondaDependencies`` the notebook can keep editing.
"""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from pydantic import Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from modelport.errors import ConfigError, InvalidInputError
from modelport.sdk.conda import CondaDependencies
from modelport.sdk.files import read_text as read_text  # re-exported for the CLI
from modelport.sdk.workspace import Workspace
from modelport.spec import environment as spec
from modelport.spec.document import parse_document, pydantic_messages
from modelport.spec.environment import (
    EnvironmentSpec,
    conda_environment_document,
    pip_environment_document,
)


class _Checked:
    """Attribute assignment reports a wrong value as ``ConfigError``, naming the field."""

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except PydanticValidationError as exc:
            messages = pydantic_messages(exc, type(self), type(self).__name__)
            raise ConfigError("\n".join(messages)) from exc


class PythonSection(_Checked, spec.PythonSection):
    @field_validator("conda_dependencies", mode="after")
    @classmethod
    def _editable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None or isinstance(value, CondaDependencies):
            return value
        return CondaDependencies(_underlying_structure=value)


class DockerSection(_Checked, spec.DockerSection):
    pass


class _Variables(dict[str, str]):
    """``env.environment_variables[...] = value``: checked and made text when set."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(*_variable(key, value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> str:
        if key not in self:
            self[key] = default
        return self[key]


def _variable(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"environment variable name {key!r} must be a non-empty string")
    if isinstance(value, str):
        return key, value
    if isinstance(value, bool | int | float):
        return key, json.dumps(value)  # 1 → "1", True → "true"
    raise InvalidInputError(
        f"environment variable {key}: the value must be text or a number, "
        f"got {type(value).__name__}"
    )


class Environment(_Checked, EnvironmentSpec):
    """A v1-style environment; ``register`` stores it and returns the stored version.

    ``Environment("name")`` starts, as in v1, with a ``CondaDependencies()`` that
    pins this SDK's Python and lists ``azureml-defaults`` (which modelport's build
    replaces with its runtime).
    """

    python: PythonSection = Field(
        default_factory=lambda: PythonSection(conda_dependencies=CondaDependencies())
    )
    docker: DockerSection = Field(default_factory=DockerSection)
    environment_variables: dict[str, str] = Field(default_factory=_Variables, validate_default=True)

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ConfigError("\n".join(pydantic_messages(exc, type(self), "environment"))) from exc

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _variables(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return _Variables(dict(_variable(k, v) for k, v in value.items()))

    @field_validator("environment_variables", mode="after")
    @classmethod
    def _settable(cls, value: dict[str, str]) -> dict[str, str]:
        return value if isinstance(value, _Variables) else _Variables(value)

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike[str]) -> Self:
        return cls.from_document(pip_environment_document(name, read_text(file_path)))

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | os.PathLike[str]) -> Self:
        doc = conda_environment_document(name, read_text(file_path), Path(file_path).name)
        return cls.from_document(doc, where=Path(file_path).name)

    @classmethod
    def load_from_file(cls, file_path: str | os.PathLike[str]) -> Self:
        """Read a v1 Environment definition (JSON or YAML)."""
        doc = parse_document(read_text(file_path), str(file_path))
        return cls.from_document(doc, where=str(file_path))

    def register(self, workspace: Workspace) -> Environment:
        doc = self.model_dump(by_alias=True, mode="json")
        data = workspace.client.call("POST", "/api/v1/environments", json=doc)
        return _from_record(data)

    @staticmethod
    def get(workspace: Workspace, name: str, version: str | int | None = None) -> Environment:
        path = f"/api/v1/environments/{quote(name)}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return _from_record(workspace.client.call("GET", path))

    @staticmethod
    def list(workspace: Workspace) -> builtins.dict[str, Environment]:
        """Latest version of each environment, by name (as v1)."""
        data = workspace.client.call("GET", "/api/v1/environments", params={"latest": True})
        envs = [_from_record(item) for item in data["value"]]
        return {env.name: env for env in envs}


def _from_record(data: dict[str, Any]) -> Environment:
    return Environment.model_validate(data["definition"])
