"""Name rules of the v1 contract (§1.4), checked the same way by SDK and server.

Every rule matches the whole name (:class:`NameRule`): ``re.match`` with ``$``
also accepts a trailing newline, so ``"evil\\n"`` would pass.
"""

from __future__ import annotations

import re

from modelport.errors import InvalidInputError


class NameRule:
    """A pattern that must match the whole name; its text stays as v1 prints it."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._regex = re.compile(pattern)

    def match(self, name: str) -> re.Match[str] | None:
        return self._regex.fullmatch(name)


SERVICE_NAME_RE = NameRule(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MODEL_NAME_RE = NameRule(r"^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$")
NAMESPACE_RE = NameRule(r"^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$")
_VERSION_RE = NameRule(r"[0-9]{1,19}")  # no longer than MAX_VERSION
RESERVED_ENVIRONMENT_PREFIXES = ("microsoft", "azureml")
MAX_VERSION = 2**63 - 1  # versions are stored as 64-bit integers

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
    # ASCII digits, bounded: str.isdigit() takes '²', and int() refuses 4301 digits.
    if not _VERSION_RE.match(version) or not 1 <= int(version) <= MAX_VERSION:
        raise InvalidInputError(
            f"invalid model id {model_id!r}: the version after ':' must be an integer "
            f"between 1 and {MAX_VERSION}"
        )
    return check_model_name(name), int(version)


# A scoring client's secret starts so: told apart from keys and the admin token at a glance.
CLIENT_SECRET_PREFIX = "mpc_"
