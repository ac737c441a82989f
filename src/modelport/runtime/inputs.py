"""What ``run()`` is called with, read from the request (contract section 5.1).

Undecorated: the body as a string, or the query as a JSON string on GET.
``@input_schema``: the JSON body's (or the query's) keys as keyword arguments.  A
request these cannot be read from raises :class:`BadInput` with the status and the
v1 message to answer; nothing here raises anything else, however deep the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Set
from typing import Any
from urllib.parse import parse_qs

from modelport.httpserver import Request

TOO_DEEP = "is nested too deeply to be read (Python's recursion limit)"


class BadInput(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def body_text(request: Request) -> str:
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(400, "POST body must be UTF-8 text") from None


def query_json(query: str) -> str:
    """GET parameters for an undecorated ``run()``: one JSON document, as v1 sends it."""
    values = query_values(query)
    try:
        return json.dumps(values)
    except RecursionError:
        raise BadInput(400, f"the query {TOO_DEEP}") from None


def query_values(query: str) -> dict[str, Any]:
    """Each parameter's values, JSON-decoded where they are JSON; repeats make a list."""
    out: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        decoded = [_json_or_text(key, v) for v in values]
        out[key] = decoded[0] if len(decoded) == 1 else decoded
    return out


def _json_or_text(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
    except RecursionError:
        raise BadInput(400, f"query parameter {key!r} {TOO_DEEP}") from None


def schema_body(request: Request, content_type: bytes) -> dict[str, Any]:
    """The JSON object an ``@input_schema`` ``run()`` takes its arguments from."""
    mimetype = content_type.decode("latin-1").split(";")[0].strip().lower()
    if mimetype != "application/json":
        raise BadInput(415, "Expects Content-Type to be application/json")
    try:
        body = json.loads(request.body)
    except ValueError:
        raise BadInput(400, "POST body should be a valid JSON document.") from None
    except RecursionError:
        raise BadInput(400, f"POST body {TOO_DEEP}") from None
    if not isinstance(body, dict):
        raise BadInput(400, "POST body should be a JSON dictionary.")
    return body


def schema_arguments(
    body: dict[str, Any], params: Collection[str], required: Set[str]
) -> dict[str, Any]:
    kwargs = {k: v for k, v in body.items() if k in params}
    for name in sorted(required - set(kwargs)):
        raise BadInput(400, f"A value is not provided for the '{name}' parameter.")
    return kwargs
