"""``InferenceConfig`` (contract §2.2): entry script, source directory, environment."""

from __future__ import annotations

import ast
import keyword
from pathlib import PurePath
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from modelport.errors import ConfigError
from modelport.spec.document import pydantic_messages
from modelport.spec.environment import EnvironmentSpec

LEGACY_FIELDS = (
    "runtime",
    "conda_file",
    "extra_docker_file_steps",
    "enable_gpu",
    "base_image",
    "base_image_registry",
    "cuda_version",
)
# Older docs spelled it extraDockerFileSteps; the v1 CLI reads extraDockerfileSteps.
_FILE_KEY_ALIASES = {"extraDockerfileSteps": "extraDockerFileSteps"}


class InferenceConfigSpec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    entry_script: str
    source_directory: str | None = None
    environment: EnvironmentSpec | None = None
    description: str | None = None
    runtime: Literal["python", "spark-py"] | None = None
    conda_file: str | None = None
    extra_docker_file_steps: str | None = None
    enable_gpu: bool | None = None
    base_image: str | None = None
    base_image_registry: dict[str, Any] | None = None
    cuda_version: Literal["9.0", "9.1", "10.0"] | None = None

    @classmethod
    def create(cls, values: dict[str, Any], where: str = "inference config") -> Self:
        try:
            config = cls.model_validate(values)
        except PydanticValidationError as exc:
            raise ConfigError("\n".join(pydantic_messages(exc, cls, where))) from exc
        problems = config.problems()
        if problems:
            raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
        return config

    @classmethod
    def from_document(cls, doc: dict[str, Any], filename: str = "inferenceconfig.json") -> Self:
        doc = {_FILE_KEY_ALIASES.get(k, k): v for k, v in doc.items()}
        return cls.create(doc, where=filename)

    def problems(self) -> list[str]:
        out = []
        given_legacy = [f for f in LEGACY_FIELDS if getattr(self, f) is not None]
        if self.environment is not None and given_legacy:
            out.append(
                "Error, unable to provide runtime, conda_file, extra_docker_file_steps, "
                "enable_gpu, base_image, base_image_registry, cuda_version along with an "
                f"environment object. (got {', '.join(given_legacy)})"
            )
        script = PurePath(self.entry_script)
        if script.suffix != ".py":
            out.append(
                "Invalid driver type. Currently only Python drivers are supported. "
                f"(got entry_script={self.entry_script!r})"
            )
        elif not script.stem.isidentifier() or keyword.iskeyword(script.stem):
            out.append(
                f"entry_script {self.entry_script!r}: its name must be an importable Python "
                "module name (letters, digits and '_', not starting with a digit, not a keyword)"
            )
        return out

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def check_entry_script_source(source: str, filename: str) -> None:
    """Refuse an entry script that does not parse, naming the line."""
    try:
        ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise ConfigError(
            f"entry script {filename} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from exc
