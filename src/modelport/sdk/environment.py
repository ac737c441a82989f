"""``Environment``: what a replica's Python needs, registered by name and version."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from modelport.errors import InvalidInputError
from modelport.sdk.workspace import Workspace
from modelport.spec.document import parse_document
from modelport.spec.environment import (
    EnvironmentSpec,
    conda_environment_document,
    pip_environment_document,
)


def read_text(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {str(path)!r}: {exc}") from exc


class Environment(EnvironmentSpec):
    """A v1-style environment; ``register`` stores it and returns the stored version."""

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
