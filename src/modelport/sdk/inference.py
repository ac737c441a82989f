"""``InferenceConfig`` with the v1 constructor, checking its files on disk.

A legacy configuration (``runtime="python", conda_file=...``) is honoured as v1's
``Model.deploy`` does: at deploy it becomes an environment named ``<service>-env``
built from the conda file (:meth:`InferenceConfig.for_service`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError, InvalidInputError
from modelport.sdk.files import read_text
from modelport.spec.document import parse_document
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.inference import (
    InferenceConfigSpec,
    check_entry_script_source,
    convert_legacy,
    legacy_environment,
)


class InferenceConfig:
    """Entry script + source directory + environment, validated as v1 does."""

    def __init__(
        self,
        entry_script: str,
        runtime: str | None = None,
        conda_file: str | None = None,
        extra_docker_file_steps: str | None = None,
        source_directory: str | os.PathLike[str] | None = None,
        enable_gpu: bool | None = None,
        description: str | None = None,
        base_image: str | None = None,
        base_image_registry: dict[str, Any] | None = None,
        cuda_version: str | None = None,
        environment: EnvironmentSpec | None = None,
    ) -> None:
        values = {k: v for k, v in locals().items() if k != "self" and v is not None}
        if "source_directory" in values:
            values["source_directory"] = os.fspath(values["source_directory"])
        if environment is not None:
            values["environment"] = environment.model_dump()
        self.spec = InferenceConfigSpec.create(values)
        self.validate_configuration()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> InferenceConfig:
        """Load ``inferenceconfig.json``/``.yml``; relative paths are taken from its folder."""
        doc = parse_document(read_text(path), Path(path).name)
        spec = InferenceConfigSpec.from_document(doc, Path(path).name)
        base = Path(path).parent
        source = base / spec.source_directory if spec.source_directory else base
        values = spec.model_dump(exclude_none=True)
        values["source_directory"] = str(source)
        values.pop("environment", None)
        env = (
            EnvironmentSpec.model_validate(spec.environment.model_dump())
            if spec.environment
            else None
        )
        return cls(**values, environment=env)

    @property
    def entry_script(self) -> str:
        return self.spec.entry_script

    @property
    def source_directory(self) -> str | None:
        return self.spec.source_directory

    @property
    def environment(self) -> EnvironmentSpec | None:
        return self.spec.environment

    def validate_configuration(self) -> None:
        """The entry script exists (relative to the source directory) and parses; so do
        a legacy conda file and docker steps file."""
        base = self._base()
        if self.spec.source_directory and not base.is_dir():
            raise InvalidInputError(f"source_directory {str(base)!r} is not a folder")
        script = self._file("entry_script", self.spec.entry_script)
        check_entry_script_source(read_text(script), self.spec.entry_script)
        if self.spec.is_legacy:
            self._legacy_environment("validate")  # the conda file parses into an environment

    def for_service(self, service_name: str) -> InferenceConfig:
        """This configuration as v1 deploys it as ``service_name``: legacy parts become an
        environment ``<service>-env`` (re-read from the files now, as v1 does)."""
        if not self.spec.is_legacy:
            return self
        conda, steps = self._legacy_texts()
        converted = convert_legacy(self.spec, service_name, conda, steps)
        values = converted.model_dump(exclude_none=True, exclude={"environment"})
        env = converted.environment
        return InferenceConfig(**values, environment=env)

    def _legacy_environment(self, service_name: str) -> EnvironmentSpec | None:
        conda, steps = self._legacy_texts()
        return legacy_environment(self.spec, conda, service_name, docker_steps=steps)

    def _legacy_texts(self) -> tuple[str | None, str | None]:
        conda = steps = None
        if self.spec.conda_file:
            conda = read_text(self._file("conda_file", self.spec.conda_file))
        if self.spec.extra_docker_file_steps:
            path = self._file("extra_docker_file_steps", self.spec.extra_docker_file_steps)
            steps = read_text(path)
        return conda, steps

    def _base(self) -> Path:
        return Path(self.spec.source_directory) if self.spec.source_directory else Path(".")

    def _file(self, what: str, relative: str) -> Path:
        """A file the configuration names, relative to the source directory as in v1."""
        path = self._base() / relative
        if not path.is_file():
            where = (
                f" in source_directory {str(self._base())!r}" if self.spec.source_directory else ""
            )
            raise ConfigError(f"{what} {relative!r} was not found{where}")
        return path

    def serialize(self) -> dict[str, Any]:
        return self.spec.to_document()

    def __repr__(self) -> str:
        return (
            f"InferenceConfig(entry_script={self.entry_script!r}, "
            f"source_directory={self.source_directory!r})"
        )
