"""``InferenceConfig`` with the v1 constructor, checking the entry script on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError, InvalidInputError
from modelport.sdk.environment import read_text
from modelport.spec.document import parse_document
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.inference import InferenceConfigSpec, check_entry_script_source


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
        """The entry script exists (relative to the source directory) and parses."""
        base = Path(self.spec.source_directory) if self.spec.source_directory else Path(".")
        if self.spec.source_directory and not base.is_dir():
            raise InvalidInputError(f"source_directory {str(base)!r} is not a folder")
        script = base / self.spec.entry_script
        if not script.is_file():
            raise ConfigError(
                f"entry_script {self.spec.entry_script!r} was not found"
                + (f" in source_directory {str(base)!r}" if self.spec.source_directory else "")
            )
        check_entry_script_source(read_text(script), self.spec.entry_script)

    def serialize(self) -> dict[str, Any]:
        return self.spec.to_document()

    def __repr__(self) -> str:
        return (
            f"InferenceConfig(entry_script={self.entry_script!r}, "
            f"source_directory={self.source_directory!r})"
        )
