from __future__ import annotations

import pytest

from modelport import errors
from modelport.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    ModelportError,
    NotFoundError,
    UnauthorizedError,
)
from modelport.spec.model import check_relative_path
from modelport.spec.names import check_model_name, check_service_name, parse_model_id


def test_each_error_has_a_distinct_code_status_and_exit_code() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, ModelportError)
    ]
    assert len({c.code for c in classes}) == len(classes)
    for cls in classes:
        assert 400 <= cls.http_status <= 599 and cls.exit_code >= 1


@pytest.mark.parametrize("cls", [ConfigError, ConflictError, NotFoundError, UnauthorizedError])
def test_body_round_trip_rebuilds_the_same_class(cls: type[ModelportError]) -> None:
    err = cls("it broke", hint="do this")
    body = err.to_body()
    assert body == {"error": {"code": cls.code, "message": "it broke", "hint": "do this"}}
    back = errors.from_body(cls.http_status, body)
    assert type(back) is cls and back.message == "it broke" and back.hint == "do this"


def test_body_without_error_shape_falls_back_to_status() -> None:
    assert isinstance(errors.from_body(404, "nope"), NotFoundError)
    assert type(errors.from_body(502, None)) is ModelportError


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
    with pytest.raises(InvalidInputError, match="positive integer"):
        parse_model_id("m:x")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "./a", ""])
def test_escaping_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInputError, match="escape"):
        check_relative_path(path)
