"""Names a v1 entry script imports for raw HTTP access (contract section 5.1).

``from azureml.contrib.services.aml_request import rawhttp, AMLRequest`` becomes
``from modelport.runtime.api import rawhttp, AMLRequest, AMLResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

F = TypeVar("F", bound=Callable[..., Any])


def rawhttp(func: F) -> F:
    """Mark ``run`` to receive the whole request as an :class:`AMLRequest`."""
    func.__modelport_rawhttp__ = True  # type: ignore[attr-defined]
    return func


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers (the last value of a repeated name)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        self._map = {k.lower(): v for k, v in self._items}

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map

    def get(self, key: str, default: Any = None) -> Any:
        return self._map.get(key.lower(), default)


class Args(dict[str, list[str]]):
    """Query parameters; ``get`` gives the first value, ``getlist`` all of them."""

    def get(self, key: str, default: Any = None) -> Any:
        values = super().get(key)
        return values[0] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(super().get(key, []))


class AMLRequest:
    """The parts of a Flask request that v1 scoring scripts use."""

    def __init__(self, method: str, path: str, query: str, headers: Headers, body: bytes) -> None:
        self.method = method
        self.path = path
        self.query_string = query.encode()
        self.full_path = f"{path}?{query}"
        self.headers = headers
        self.args = Args(parse_qs(query, keep_blank_values=True))
        self.data = body
        self.content_type: str = str(headers.get("content-type", ""))
        self.mimetype = self.content_type.split(";")[0].strip().lower()

    def get_data(
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> Any:
        return self.data.decode("utf-8") if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")

    @property
    def json(self) -> Any:
        return self.get_json()


class AMLResponse:
    """A response sent as-is: ``AMLResponse(message, status_code, response_headers, json_str)``."""

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        if json_str:
            body = json.dumps(message).encode()
            content_type = "application/json"
        else:
            body = message if isinstance(message, bytes) else str(message).encode()
            content_type = "text/html; charset=utf-8"
        self.status_code = int(status_code)
        self.body = body
        self.headers = {"Content-Type": content_type, **dict(response_headers or {})}
        if run_function_failed or self.status_code >= 500:
            self.headers["x-ms-run-function-failed"] = "True"

    @property
    def data(self) -> bytes:
        return self.body
