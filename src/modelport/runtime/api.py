"""Names a v1 entry script imports for raw HTTP access (contract section 5.1).

Inside a replica the v1 paths work unchanged (``azureml.contrib.services.aml_request``,
``azureml_inference_server_http.api.aml_response``, ...: see ``v1paths``); this module
is the same thing under modelport's own name.  ``AMLRequest`` and ``AMLResponse`` are
werkzeug classes, loaded on first use, so importing ``rawhttp`` alone costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from modelport.runtime.wsgi import AMLRequest, AMLResponse

__all__ = ["AMLRequest", "AMLResponse", "Headers", "rawhttp"]

F = TypeVar("F", bound=Callable[..., Any])


def rawhttp(func: F) -> F:
    """Mark ``run`` to receive the whole request as an :class:`AMLRequest`."""
    func.__modelport_rawhttp__ = True  # type: ignore[attr-defined]
    return func


def __getattr__(name: str) -> Any:
    if name in ("AMLRequest", "AMLResponse"):
        from modelport.runtime import wsgi

        return getattr(wsgi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
