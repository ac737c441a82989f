from __future__ import annotations

import pytest

from modelport import errors
from modelport.errors import (
    ClusterUnreachableError,
    ComputeTargetError,
    ComputeTargetNotFoundError,
    ConfigError,
    ConflictError,
    InsufficientStorageError,
    InvalidInputError,
    ModelportError,
    NotFoundError,
    StorageUnavailableError,
    UnauthorizedError,
)
from modelport.spec.deployment import AksEndpointDeploymentConfiguration
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.model import ModelFile, ModelRegistration, check_relative_path
from modelport.spec.names import (
    MAX_VERSION,
    NAMESPACE_RE,
    check_environment_name,
    check_model_name,
    check_service_name,
    parse_model_id,
)


def test_each_error_has_a_distinct_code_status_and_exit_code() -> None:
    classes = _error_classes()
    assert len({c.code for c in classes}) == len(classes)
    for cls in classes:
        assert 400 <= cls.http_status <= 599 and cls.exit_code >= 1


@pytest.mark.parametrize(
    "cls",
    [
        ConfigError,
        ConflictError,
        NotFoundError,
        UnauthorizedError,
        StorageUnavailableError,
        InsufficientStorageError,
        ComputeTargetError,
        ClusterUnreachableError,
        ComputeTargetNotFoundError,
    ],
)
def test_body_round_trip_rebuilds_the_same_class(cls: type[ModelportError]) -> None:
    err = cls("it broke", hint="do this")
    body = err.to_body()
    assert body == {"error": {"code": cls.code, "message": "it broke", "hint": "do this"}}
    back = errors.from_body(cls.http_status, body)
    assert type(back) is cls and back.message == "it broke" and back.hint == "do this"


def test_body_without_error_shape_falls_back_to_status() -> None:
    assert isinstance(errors.from_body(404, "nope"), NotFoundError)
    assert type(errors.from_body(502, None)) is ModelportError
    assert type(errors.from_body(507, None)) is InsufficientStorageError


def test_the_docstring_tree_lists_every_error_with_its_status_and_code() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        line = next((ln for ln in doc.splitlines() if f" {cls.__name__} " in ln), "")
        assert f" {cls.http_status} " in line and line.endswith(f" {cls.code}"), cls
        assert f"exit {cls.exit_code} " in line, cls


def _error_classes() -> list[type[ModelportError]]:
    return [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, ModelportError)
    ]


@pytest.mark.parametrize("name", ["m", "model.v2", "A_b-c.1", "x" * 255])
def test_valid_model_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", ".dot", "has space", "x" * 256, "a/b", "a:b"])
def test_invalid_model_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid model name"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["ab", "Upper", "1abc", "abc-", "a" * 33, "a_b"])
def test_invalid_service_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="provided service name is invalid"):
        check_service_name(name)


def test_model_ids() -> None:
    assert parse_model_id("m:3") == ("m", 3)
    assert parse_model_id("m") == ("m", None)
    assert parse_model_id(f"m:{MAX_VERSION}") == ("m", MAX_VERSION)


@pytest.mark.parametrize(
    "version",
    ["x", "0", "-1", "", " 1", "1 ", "1\n", "\u00b2", "\u0661", str(MAX_VERSION + 1), "9" * 5000],
)
def test_model_id_versions_out_of_range_are_refused(version: str) -> None:
    with pytest.raises(InvalidInputError, match=f"between 1 and {MAX_VERSION}"):
        parse_model_id(f"m:{version}")


# Each name rule matches whole names only: a trailing newline ($ in re.match would
# take it), spaces around the name and NUL are refused by every one.
_NOT_WHOLE = ["{}\n", "{}\r\n", " {}", "{} ", "{}\x00", "\x00{}", "{}\nx"]


def _refused_by_namespace(name: str) -> None:
    if not NAMESPACE_RE.match(name):
        raise InvalidInputError(f"invalid namespace {name!r}")


def _refused_by_version_name(name: str) -> None:
    problems = AksEndpointDeploymentConfiguration(version_name=name).problems()
    if problems:
        raise InvalidInputError("; ".join(problems))


def _refused_in_a_registration(name: str) -> None:
    file = ModelFile(path="m.bin", sha256="0" * 64, size=1)
    try:
        ModelRegistration(name=name, kind="file", basename="m.bin", files=[file])
    except ValueError as exc:  # pydantic's ValidationError
        raise InvalidInputError(str(exc)) from exc


def _refused_in_an_environment(name: str) -> None:
    EnvironmentSpec.from_document({"name": name})


NAME_RULES = {
    "service": (check_service_name, "my-service"),
    "model": (check_model_name, "my-model"),
    "environment": (check_environment_name, "my-env"),
    "namespace": (_refused_by_namespace, "my-namespace"),
    "endpoint version": (_refused_by_version_name, "version-one"),
    "model registration": (_refused_in_a_registration, "my-model"),
    "environment document": (_refused_in_an_environment, "my-env"),
    "model id": (parse_model_id, "my-model:1"),
}


@pytest.mark.parametrize("rule", NAME_RULES)
def test_each_name_rule_takes_its_valid_name(rule: str) -> None:
    check, valid = NAME_RULES[rule]
    check(valid)


@pytest.mark.parametrize("shape", _NOT_WHOLE)
@pytest.mark.parametrize("rule", NAME_RULES)
def test_each_name_rule_matches_the_whole_name(rule: str, shape: str) -> None:
    check, valid = NAME_RULES[rule]
    with pytest.raises(InvalidInputError):
        check(shape.format(valid))


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "./a", ""])
def test_escaping_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInputError, match="escape"):
        check_relative_path(path)
