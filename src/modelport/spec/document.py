"""Parsing of v1 configuration documents (JSON or YAML) into plain mappings.

Pure: callers read the file and hand over its text, so spec/ stays free of I/O.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from modelport.errors import ConfigError


def parse_document(text: str, filename: str) -> dict[str, Any]:
    """Parse a configuration file's text; errors name the file and the line.

    ``.json`` files are parsed as strict JSON, ``.yml``/``.yaml`` as YAML; any other
    name is tried as JSON when it looks like JSON, else as YAML (v1 accepted both).
    """
    lower = filename.lower()
    as_json = lower.endswith(".json") or (
        not lower.endswith((".yml", ".yaml")) and text.lstrip().startswith(("{", "["))
    )
    data = _parse_json(text, filename) if as_json else _parse_yaml(text, filename)
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError(
            f"{filename}: expected a mapping of keys to values at the top, got {kind}"
        )
    return data


def _parse_json(text: str, filename: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{filename}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def _parse_yaml(text: str, filename: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{filename}: not valid YAML{where}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: not valid YAML: {exc}") from exc


def unknown_key_message(key: str, known: Iterable[str], where: str) -> str:
    """``unknown key 'x' in <where>`` with a "did you mean" when one is close."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    close = [lowered[key.lower()]] if key.lower() in lowered else []
    close = close or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}' in {where}{hint}"


def check_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def pydantic_messages(exc: Any, model: Any, where: str) -> list[str]:
    """Turn a pydantic ValidationError into one line per problem, naming the key.

    Unknown keys get the "did you mean" of :func:`unknown_key_message`, computed
    from the aliases the (nested) model accepts at that place.
    """
    lines = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        if err["type"] == "extra_forbidden":
            parent = ".".join(loc[:-1])
            lines.append(
                unknown_key_message(
                    loc[-1], _known_keys(model, loc[:-1]), f"{where} {parent}".strip()
                )
            )
            continue
        key = ".".join(loc) or "(top level)"
        lines.append(f"{where} {key}: {err['msg']} (got {err.get('input')!r})".strip())
    return lines


def _known_keys(model: Any, loc: list[str]) -> list[str]:
    for part in loc:
        fields = getattr(model, "model_fields", {})
        field = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not None]
        model = next((a for a in candidates if hasattr(a, "model_fields")), None)
        if model is None:
            return []
    fields = getattr(model, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]
