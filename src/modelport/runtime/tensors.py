"""Open Inference Protocol (v2) tensors <-> numpy arrays: pure conversions, no I/O.

A tensor on the wire is ``{"name", "datatype", "shape", "data"}`` with ``data``
flattened in row-major order (nested lists are taken too), or, with the binary-data
extension, ``parameters.binary_data_size`` bytes of the body after the JSON header:
raw little-endian elements, or for ``BYTES`` each element as a 4-byte little-endian
length and its bytes.  Anything that does not fit raises :class:`TensorError`, whose
text the dataplane sends as the protocol's ``{"error": ...}``.

numpy is imported by the callers' first use only: the runtime does not need it
for ``/score``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

# OIP datatype -> numpy dtype name; BYTES are Python bytes in an object array.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
_BY_KIND = {v: k for k, v in DATATYPES.items() if k != "BYTES"}
_LENGTH = struct.Struct("<I")


class TensorError(Exception):
    """A request the protocol refuses: ``status`` and a message naming what is wrong."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def dtype_of(datatype: str) -> Any:
    """The numpy dtype of an OIP datatype (little-endian, as the binary extension sends)."""
    import numpy as np

    name = DATATYPES.get(datatype)
    if name is None:
        known = ", ".join(DATATYPES)
        raise TensorError(f"datatype {datatype!r} is not supported; use one of {known}")
    return np.dtype(name).newbyteorder("<") if name != "object" else np.dtype(object)


def datatype_of(dtype: Any) -> str:
    """The OIP datatype of a numpy dtype; strings and objects are BYTES."""
    if dtype.kind in "OSUa":
        return "BYTES"
    found = _BY_KIND.get(dtype.name)
    if found is None:
        raise TensorError(f"numpy dtype {dtype} has no Open Inference Protocol datatype", 500)
    return found


def check_shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise TensorError(f"input {name!r}: shape must be a list of non-negative integers")
    return shape


def fits(shape: Sequence[int], declared: Sequence[int]) -> bool:
    """Whether ``shape`` matches a declared one, where -1 takes any size."""
    return len(shape) == len(declared) and all(
        d in (-1, s) for s, d in zip(shape, declared, strict=True)
    )


def decode(spec: dict[str, Any], blob: bytes | None) -> Any:
    """One request input as a numpy array of its datatype, reshaped to its shape."""
    name = spec.get("name")
    if not isinstance(name, str):
        raise TensorError("each input needs a 'name' string")
    shape = check_shape(name, spec.get("shape"))
    dtype = dtype_of(spec.get("datatype", ""))
    count = math.prod(shape)
    if blob is not None:
        flat = _from_bytes(name, blob, dtype, count)
    elif "data" in spec:
        flat = _from_json(name, spec["data"], spec["datatype"], dtype)
    else:
        raise TensorError(f"input {name!r} has no 'data'")
    if flat.size != count:
        raise TensorError(
            f"input {name!r}: shape {shape} needs {count} elements, the data has {flat.size}"
        )
    return flat.reshape(shape)


def _from_json(name: str, data: Any, datatype: str, dtype: Any) -> Any:
    import numpy as np

    if not isinstance(data, list):
        data = [data]
    try:
        if datatype == "BYTES":
            items = np.asarray(data, dtype=object).reshape(-1)
            return np.array([_utf8(v) for v in items], dtype=object)
        if datatype == "BOOL" and not all(type(v) is bool for v in _flat(data)):
            raise ValueError("BOOL data must be true or false")
        return np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TensorError(f"input {name!r}: data does not fit datatype {datatype}: {exc}") from None


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in data:
        out.extend(_flat(v) if isinstance(v, list) else [v])
    return out


def _utf8(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"BYTES elements must be strings, not {type(value).__name__}")


def _from_bytes(name: str, blob: bytes, dtype: Any, count: int) -> Any:
    import numpy as np

    if dtype.kind != "O":
        if len(blob) != count * dtype.itemsize:
            raise TensorError(
                f"input {name!r}: {len(blob)} bytes of binary data, "
                f"the shape and datatype need {count * dtype.itemsize}"
            )
        return np.frombuffer(blob, dtype=dtype)
    items, at = [], 0
    while at < len(blob):
        if at + 4 > len(blob):
            raise TensorError(f"input {name!r}: BYTES binary data is cut short")
        (size,) = _LENGTH.unpack_from(blob, at)
        items.append(blob[at + 4 : at + 4 + size])
        at += 4 + size
    if at != len(blob):
        raise TensorError(f"input {name!r}: BYTES binary data is cut short")
    return np.array(items, dtype=object)


def encode(
    name: str, value: Any, datatype: str | None, binary: bool
) -> tuple[dict[str, Any], bytes]:
    """One output tensor, with its binary data (empty unless ``binary``)."""
    import numpy as np

    try:
        array = np.asarray(value) if datatype is None else np.asarray(value, dtype_of(datatype))
    except (ValueError, TypeError) as exc:
        raise TensorError(
            f"output {name!r} is not a {datatype or 'numeric'} tensor: {exc}", 500
        ) from None
    kind = datatype or datatype_of(array.dtype)
    tensor: dict[str, Any] = {"name": name, "datatype": kind, "shape": list(array.shape)}
    flat = array.reshape(-1)
    if kind == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist()]
        if binary:
            blob = b"".join(_LENGTH.pack(len(v)) + v for v in items)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            return tensor, blob
        tensor["data"] = [v.decode(errors="replace") for v in items]
        return tensor, b""
    if binary:
        blob = flat.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        tensor["parameters"] = {"binary_data_size": len(blob)}
        return tensor, blob
    tensor["data"] = flat.tolist()
    return tensor, b""
