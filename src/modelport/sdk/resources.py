"""``ResourceConfiguration``: the cpu, memory and gpu a model asks for (v1 names).

v1 used it only for no-code deployment and profiling; modelport keeps it with the
model version (:data:`PROPERTY`, a read-only model property) so it is not lost, and
does not size replicas by it: a deployment configuration does that.
"""

from __future__ import annotations

import json
from typing import Any

from modelport.errors import InvalidInputError

PROPERTY = "modelport.resourceConfiguration"


class ResourceConfiguration:
    """``ResourceConfiguration(cpu=None, memory_in_gb=None, gpu=None)`` as in v1."""

    def __init__(
        self, cpu: float | None = None, memory_in_gb: float | None = None, gpu: int | None = None
    ) -> None:
        self.cpu = cpu
        self.memory_in_gb = memory_in_gb
        self.gpu = gpu
        self._validate()

    def _validate(self) -> None:
        for name, value in (("cpu", self.cpu), ("memory_in_gb", self.memory_in_gb)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise InvalidInputError(
                    f"Invalid resource configuration, {name} must be a positive number "
                    f"(got {value!r})"
                )
        if self.gpu is not None and (
            isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0
        ):
            raise InvalidInputError(
                "Invalid resource configuration, gpu must be a whole number >= 0 "
                f"(got {self.gpu!r})"
            )

    def serialize(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "memoryInGB": self.memory_in_gb, "gpu": self.gpu}

    @staticmethod
    def deserialize(payload: dict[str, Any]) -> ResourceConfiguration:
        return ResourceConfiguration(
            payload.get("cpu"), payload.get("memoryInGB"), payload.get("gpu")
        )

    def to_property(self) -> str:
        return json.dumps(self.serialize(), separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceConfiguration) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.cpu, self.memory_in_gb, self.gpu))

    def __repr__(self) -> str:
        return (
            f"ResourceConfiguration(cpu={self.cpu!r}, memory_in_gb={self.memory_in_gb!r}, "
            f"gpu={self.gpu!r})"
        )
