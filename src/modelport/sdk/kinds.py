"""``Base(ws, name)`` as v1 has it: the object of the subclass the server's answer names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def new_by_type(
    cls: type,
    base: type,
    fetch: Callable[[], dict[str, Any]],
    classes: Mapping[str, type],
    default: type,
) -> Any:
    """An instance of the subclass ``classes`` maps the answer's ``computeType`` to, holding
    that answer (``_prefetched``) so it is not asked for twice; a subclass called by its
    own name is itself."""
    if cls is not base:
        return object.__new__(cls)
    data = fetch()
    instance: Any = object.__new__(classes.get(str(data.get("computeType")), default))
    instance._prefetched = data
    return instance
