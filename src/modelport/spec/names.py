"""Name rules of the v1 contract (§1.4), checked the same way by SDK and server."""

from __future__ import annotations

import re

from modelport.errors import InvalidInputError

SERVICE_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MODEL_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$")
RESERVED_ENVIRONMENT_PREFIXES = ("microsoft", "azureml")

SERVICE_NAME_MESSAGE = (
    "Error, provided service name is invalid. It must only consist of lowercase letters, "
    "numbers, or dashes, start with a letter, end with a letter or number, and be between "
    "3 and 32 characters long."
)


def check_service_name(name: str) -> str:
    if not (3 <= len(name) <= 32 and SERVICE_NAME_RE.match(name)):
        raise InvalidInputError(f"{SERVICE_NAME_MESSAGE} (got {name!r})")
    return name


def _check_registry_name(kind: str, name: str) -> str:
    if not MODEL_NAME_RE.match(name):
        raise InvalidInputError(
            f"invalid {kind} name {name!r}: it must be 1 to 255 characters, start with a "
            "letter or digit, and contain only letters, digits, '-', '.' and '_'"
        )
    return name


def check_model_name(name: str) -> str:
    return _check_registry_name("model", name)


def check_environment_name(name: str) -> str:
    # v1 pins environment names only by the reserved prefixes; the model rule keeps
    # every name safe in URLs and file names.
    _check_registry_name("environment", name)
    if name.lower().startswith(RESERVED_ENVIRONMENT_PREFIXES):
        raise InvalidInputError(
            f"invalid environment name {name!r}: names starting with 'Microsoft' or 'AzureML' "
            "are reserved for curated environments"
        )
    return name


def parse_model_id(model_id: str) -> tuple[str, int | None]:
    """``name`` or ``name:version`` → (name, version or None)."""
    name, sep, version = model_id.rpartition(":")
    if not sep:
        return check_model_name(model_id), None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(
            f"invalid model id {model_id!r}: the version after ':' must be a positive integer"
        )
    return check_model_name(name), int(version)
