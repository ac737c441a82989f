"""A script's tensors for the Open Inference Protocol: what it takes and returns.

Two sources, read once: a module-level declaration (``OIP_INPUTS`` and optionally
``OIP_OUTPUTS``, lists of ``{"name", "datatype", "shape"}``; run() then gets one
dict of input name -> numpy array), else the inference-schema decorators, read
from their swagger schema as swagger.json is: a ``NumpyParameterType`` input is a
tensor of its sample's dtype and shape, a ``PandasParameterType`` one a 2-D tensor
of its columns, a ``StandardPythonParameterType`` scalar a tensor of shape [1].
The first dimension of a sample is the batch: declared as -1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelport.runtime.tensors import DATATYPES, TensorError

NUMPY, PANDAS, PYTHON, DECLARED = "numpy", "pandas", "python", "declared"
HOW_TO_DECLARE = (
    "declare its tensors with inference-schema decorators (NumpyParameterType, "
    "PandasParameterType or StandardPythonParameterType samples) or with module-level "
    'OIP_INPUTS = [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}] '
    "(and OIP_OUTPUTS) in the entry script"
)
DEFAULT_OUTPUT = "output-0"
# inference-schema's swagger formats (and bare types) -> OIP datatypes
_FORMATS = {
    "double": "FP64",
    "float": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint64": "UINT64",
    "uint32": "UINT32",
    "uint16": "UINT16",
    "uint8": "UINT8",
}
_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]
    kind: str = DECLARED  # how run() takes it
    columns: tuple[str, ...] = ()  # a DataFrame's, in order
    required: bool = True

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    declared: bool  # OIP_INPUTS: run() gets one dict of all inputs

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.inputs)
        raise TensorError(f"unexpected input {name!r}: the model takes {known}")


class NotDeclared(TensorError):
    def __init__(self, script: str) -> None:
        super().__init__(f"the entry script {script} declares no tensors: {HOW_TO_DECLARE}")


def signature_of(
    module: Any, schema_fn: Callable[..., Any] | None, required: set[str], script: str
) -> Signature:
    """The script's tensors; :class:`NotDeclared` when it has none, a ``TensorError``
    (500) when its declaration is wrong."""
    inputs = getattr(module, "OIP_INPUTS", None)
    if inputs is not None:
        outputs = getattr(module, "OIP_OUTPUTS", None) or []
        return Signature(_declared(inputs, "OIP_INPUTS"), _declared(outputs, "OIP_OUTPUTS"), True)
    if schema_fn is None:
        raise NotDeclared(script)
    return _from_schema(schema_fn, required, script)


def _declared(items: Any, what: str) -> tuple[TensorSpec, ...]:
    if not isinstance(items, list | tuple):
        raise TensorError(f"{what} must be a list of tensors, not {type(items).__name__}", 500)
    specs = []
    for item in items:
        try:
            name, datatype, shape = item["name"], item["datatype"], item["shape"]
            ok = isinstance(name, str) and datatype in DATATYPES
            ok = ok and all(type(d) is int and d >= -1 for d in shape)
        except (TypeError, KeyError):
            ok = False
        if not ok:
            text = f'{what}: {item!r} is no {{"name", "datatype", "shape"}} with a known datatype'
            raise TensorError(text, 500)
        specs.append(TensorSpec(name, datatype, tuple(shape)))
    return tuple(specs)


def _from_schema(schema_fn: Callable[..., Any], required: set[str], script: str) -> Signature:
    from inference_schema import schema_util

    schema = schema_util.get_input_schema(schema_fn) or {}
    examples = schema.get("example", {})
    inputs = tuple(
        _schema_tensor(name, prop, examples.get(name), name in required)
        for name, prop in schema.get("properties", {}).items()
    )
    if not inputs:
        raise NotDeclared(script)
    out = schema_util.get_output_schema(schema_fn)
    outputs = (_schema_tensor(DEFAULT_OUTPUT, out, out.get("example"), True),) if out else ()
    return Signature(inputs, outputs, False)


def _schema_tensor(name: str, prop: dict[str, Any], example: Any, required: bool) -> TensorSpec:
    """One decorated parameter as a tensor, from its swagger schema and example."""
    fmt = str(prop.get("format", ""))
    if fmt.startswith("pandas.DataFrame"):
        columns = prop.get("items", {}).get("properties", {})
        kinds = {_datatype(c) for c in columns.values()}
        datatype = kinds.pop() if len(kinds) == 1 else "BYTES" if "BYTES" in kinds else "FP64"
        return TensorSpec(name, datatype, (-1, len(columns)), PANDAS, tuple(columns), required)
    kind = NUMPY if fmt == "numpy.ndarray" else PYTHON
    shape = _shape(example)
    if prop.get("type") == "object" or None in shape:
        raise TensorError(
            f"parameter {name!r} is no tensor (a dict or a ragged sample); "
            f"declare OIP_INPUTS in the entry script",
            500,
        )
    if shape:
        shape = (-1, *shape[1:])
    return TensorSpec(name, _datatype(prop), shape or (1,), kind, (), required)


def _datatype(prop: dict[str, Any]) -> str:
    while prop.get("type") == "array":  # the innermost items hold the element type
        prop = prop.get("items", {})
    return _FORMATS.get(str(prop.get("format")), _TYPES.get(str(prop.get("type")), "BYTES"))


def _shape(example: Any) -> tuple[Any, ...]:
    """A nested list's shape; None for a dimension whose lists differ in length."""
    if not isinstance(example, list):
        return ()
    inner = {_shape(v) for v in example}
    return (len(example), *(inner.pop() if len(inner) == 1 else (None,)))
