"""Environments: what a replica's Python needs, in the v1 Environment JSON shape.

The content hash (DESIGN.md, "Environment cache") covers only what changes the
built virtualenv — base image, Dockerfile, conda/pip specification, Python version,
interpreter choice and environment variables — never the name or version, so two
names with the same content share one build.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidatorFunctionWrapHandler, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from modelport.errors import ConfigError, InvalidInputError
from modelport.spec.document import parse_document, pydantic_messages
from modelport.spec.names import check_environment_name

_PYTHON_NAME = re.compile(r"^python(?![A-Za-z0-9._-])")
_PYTHON_DEP = re.compile(r"^python\s*(?:={1,2}|>=|~=)?\s*(?P<version>[0-9][0-9.*]*)?\s*$")


class _V1(BaseModel):
    # validate_assignment: v1 code sets attributes after construction
    # (env.docker.base_image = ...); a wrong value fails there, not at deploy.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=True
    )


class RegistrySection(_V1):
    address: str | None = None
    username: str | None = None
    password: str | None = None


class DockerSection(_V1):
    enabled: bool = False
    base_image: str | None = None
    base_dockerfile: str | None = None
    base_image_registry: RegistrySection = Field(default_factory=RegistrySection)
    shared_volumes: bool = True
    shm_size: str | None = None
    arguments: list[str] = Field(default_factory=list)
    gpu_support: bool | None = None

    @field_validator("base_dockerfile")
    @classmethod
    def _one_base(cls, value: str | None, info: Any) -> str | None:
        if value and info.data.get("base_image"):
            raise ValueError("docker.baseImage and docker.baseDockerfile are mutually exclusive")
        return value


class PythonSection(_V1):
    user_managed_dependencies: bool = False
    interpreter_path: str = "python"
    conda_dependencies_file: str | None = None
    base_conda_environment: str | None = None
    conda_dependencies: dict[str, Any] | None = None

    @field_validator("conda_dependencies", mode="wrap")
    @classmethod
    def _conda_shape(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        checked = handler(value)
        if checked is None:
            return None
        check_conda_dependencies(checked)
        # Keep the caller's mapping itself (v1's CondaDependencies is edited in place
        # after it is assigned: env.python.conda_dependencies.add_pip_package(...)).
        return value if isinstance(value, dict) else checked


class EnvironmentSpec(_V1):
    """A named environment; ``version`` is assigned by the registry."""

    name: str
    version: str | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    python: PythonSection = Field(default_factory=PythonSection)
    docker: DockerSection = Field(default_factory=DockerSection)
    spark: dict[str, Any] = Field(default_factory=dict)
    databricks: dict[str, Any] = Field(default_factory=dict)
    r: dict[str, Any] | None = None
    inferencing_stack_version: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_environment_name(value)
        except InvalidInputError as exc:  # pydantic wraps only ValueError
            raise ValueError(exc.message) from exc

    @classmethod
    def from_document(cls, doc: dict[str, Any], where: str = "environment") -> Self:
        try:
            return cls.model_validate(doc)
        except PydanticValidationError as exc:
            raise ConfigError("\n".join(pydantic_messages(exc, cls, where))) from exc

    @property
    def python_version(self) -> str | None:
        """The Python version the conda specification pins, if any."""
        deps = (self.python.conda_dependencies or {}).get("dependencies") or []
        for dep in deps:
            match = _PYTHON_DEP.match(dep) if isinstance(dep, str) else None
            if match:
                return match.group("version")
        return None

    @property
    def python_entry(self) -> str | None:
        """The conda dependency that names the interpreter (``python=3.6.2``), if any."""
        deps = (self.python.conda_dependencies or {}).get("dependencies") or []
        for dep in deps:
            if isinstance(dep, str) and _PYTHON_NAME.match(dep.split("::")[-1].strip()):
                return dep.split("::")[-1].strip()
        return None

    def conda_variables(self) -> dict[str, str]:
        """The conda specification's ``variables`` (set on activation, as conda does)."""
        variables = (self.python.conda_dependencies or {}).get("variables") or {}
        return {str(k): str(v) for k, v in variables.items()}

    def pip_packages(self) -> list[str]:
        deps = (self.python.conda_dependencies or {}).get("dependencies") or []
        return [p for dep in deps if isinstance(dep, dict) for p in dep.get("pip", [])]

    def content_hash(self) -> str:
        """sha256 over what the built environment depends on (not name, not version)."""
        conda = dict(self.python.conda_dependencies or {})
        conda.pop("name", None)  # conda's env name does not change what is installed
        content = {
            "base_image": self.docker.base_image,
            "base_dockerfile": self.docker.base_dockerfile,
            "conda": conda,
            "python_version": self.python_version,
            "user_managed": self.python.user_managed_dependencies,
            "interpreter": self.python.interpreter_path
            if self.python.user_managed_dependencies
            else None,
            "base_conda_environment": self.python.base_conda_environment,
            "environment_variables": self.environment_variables,
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_document(self, *, redact: bool = False) -> dict[str, Any]:
        doc = self.model_dump(by_alias=True, mode="json")
        if redact and doc["docker"]["baseImageRegistry"].get("password"):
            doc["docker"]["baseImageRegistry"]["password"] = "***"
        return doc


def pip_environment_document(name: str, requirements_text: str) -> dict[str, Any]:
    """The v1 Environment document for the packages of a pip requirements file."""
    packages = parse_requirements(requirements_text)
    conda = {"name": "project_environment", "dependencies": [{"pip": packages}]}
    return {"name": name, "python": {"condaDependencies": conda}}


def conda_environment_document(name: str, yaml_text: str, filename: str) -> dict[str, Any]:
    """The v1 Environment document for a conda specification (YAML)."""
    return {"name": name, "python": {"condaDependencies": parse_document(yaml_text, filename)}}


def parse_requirements(text: str) -> list[str]:
    """Requirement lines without comments and blanks; includes are refused."""
    packages = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith(("-r", "--requirement", "-c", "--constraint")):
            raise ConfigError(
                f"requirements line {number}: {line!r} includes another file, which the server "
                "cannot read; list those requirements in this file instead"
            )
        packages.append(line)
    return packages


def check_conda_dependencies(conda: dict[str, Any]) -> None:
    variables = conda.get("variables")
    if variables is not None and not (
        isinstance(variables, dict)
        and all(isinstance(v, str | int | float | bool) for v in variables.values())
    ):
        raise ValueError("conda 'variables' must map names to plain values")
    deps = conda.get("dependencies", [])
    if not isinstance(deps, list):
        raise ValueError("conda 'dependencies' must be a list")
    for dep in deps:
        if isinstance(dep, str):
            continue
        pip = dep.get("pip") if isinstance(dep, dict) and set(dep) == {"pip"} else None
        if isinstance(pip, list) and all(isinstance(p, str) for p in pip):
            continue
        raise ValueError(
            f"conda dependency {dep!r} must be a package string or a 'pip:' list of strings"
        )
