"""What a model registration carries, validated the same way by SDK and server."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from modelport.errors import InvalidInputError
from modelport.spec.names import MAX_VERSION, check_model_name

FRAMEWORKS = ("Custom", "TensorFlow", "ScikitLearn", "Onnx", "TfKeras", "PyTorch", "Multi")
SHA256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # relative, POSIX, starting with the registered basename
    sha256: SHA256
    size: int = Field(ge=0, le=MAX_VERSION)  # a 64-bit column


class ModelRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(pattern="^(file|folder)$")
    basename: str = Field(max_length=255)  # the lengths of their columns
    files: list[ModelFile]
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    model_framework: str | None = Field(None, max_length=64)
    model_framework_version: str | None = Field(None, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_model_name(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from exc

    def check(self) -> None:
        """Cross-field rules; raises InvalidInputError."""
        if self.model_framework_version and not self.model_framework:
            raise InvalidInputError(
                "Model framework version cannot be provided without a valid framework"
            )
        if self.model_framework and self.model_framework not in FRAMEWORKS:
            raise InvalidInputError(
                f"unknown model framework {self.model_framework!r}; "
                f"expected one of {', '.join(FRAMEWORKS)}"
            )
        check_relative_path(self.basename)
        if "/" in self.basename:
            raise InvalidInputError(f"basename {self.basename!r} must be a single path part")
        seen: set[str] = set()
        for f in self.files:
            check_relative_path(f.path)
            parts = PurePosixPath(f.path).parts
            inside = parts[0] == self.basename and (len(parts) > 1) == (self.kind == "folder")
            if not inside:
                raise InvalidInputError(f"file {f.path!r} is not inside {self.basename!r}")
            if f.path in seen:
                raise InvalidInputError(f"file {f.path!r} is listed twice")
            seen.add(f.path)
        if self.kind == "file" and len(self.files) != 1:
            raise InvalidInputError("a file model has exactly one file")


def check_relative_path(path: str) -> str:
    """Refuse a path that would escape its folder (absolute, '..', empty parts)."""
    pure = PurePosixPath(path)
    bad = (
        not path
        or "\\" in path
        or "\x00" in path
        or pure.is_absolute()
        or any(part in ("..", ".", "") for part in path.split("/"))
    )
    if bad:
        raise InvalidInputError(f"path {path!r} would escape its folder; paths must be relative")
    return path
