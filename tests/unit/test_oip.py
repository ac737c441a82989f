"""Open Inference Protocol (v2): paths, tensor conversions, signatures, error shapes."""

from __future__ import annotations

import hashlib
import json
import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from modelport.httpserver import Request, Response
from modelport.oippath import INFER, LIVE, MODEL, MODEL_READY, SERVER, OipPath, model_path, parse
from modelport.router import oip as front
from modelport.router.table import RouteTable
from modelport.runtime.oip import (
    outputs_of,
    read_request,
    requested_outputs,
    response,
    run_arguments,
    tensors,
)
from modelport.runtime.signature import (
    PANDAS,
    PYTHON,
    NotDeclared,
    Signature,
    TensorSpec,
    signature_of,
)
from modelport.runtime.tensors import TensorError, datatype_of, decode, dtype_of, encode, fits


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2", OipPath(SERVER)),
        ("/v2/health/live", OipPath(LIVE)),
        ("/v2/models/m", OipPath(MODEL, "m")),
        ("/v2/models/m/ready", OipPath(MODEL_READY, "m")),
        ("/v2/models/m/versions/v2/infer", OipPath(INFER, "m", "v2")),
        ("/v2/models/m/versions//infer", None),
        ("/v2/models//infer", None),
        ("/v2/models/m/score", None),
        ("/v2/health", None),
    ],
)
def test_paths(path: str, expected: OipPath | None) -> None:
    assert parse(path) == expected


def test_model_path_names_the_chosen_version() -> None:
    assert model_path(OipPath(INFER, "ep"), "blue") == "/v2/models/ep/versions/blue/infer"
    assert model_path(OipPath(MODEL, "svc"), "") == "/v2/models/svc"


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP32", np.float32), ("INT64", np.int64), ("UINT8", np.uint8), ("BOOL", np.bool_)],
)
def test_datatypes_round_trip(datatype: str, dtype: Any) -> None:
    assert dtype_of(datatype) == np.dtype(dtype)
    assert datatype_of(np.dtype(dtype)) == datatype


def test_strings_are_bytes_and_unknown_datatypes_are_named() -> None:
    assert datatype_of(np.array(["a"]).dtype) == "BYTES"
    with pytest.raises(TensorError, match="datatype 'FP8' is not supported; use one of BOOL"):
        dtype_of("FP8")


def test_decode_flat_or_nested_data_to_the_shape() -> None:
    flat = decode({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}, None)
    nested = decode(
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}, None
    )
    assert flat.dtype == np.float32 and flat.tolist() == nested.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}, "needs 3 elements"),
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": ["a"]}, "does not fit datatype"),
        ({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}, "true or false"),
        ({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}, "non-negative"),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, "has no 'data'"),
    ],
)
def test_decode_refuses_what_does_not_fit(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TensorError, match=message) as refused:
        decode(spec, None)
    assert refused.value.status == 400


def test_binary_data_round_trips() -> None:
    values = np.array([[1.5, -2.0]], dtype=np.float32)
    tensor, blob = encode("y", values, None, binary=True)
    assert tensor == {
        "name": "y",
        "datatype": "FP32",
        "shape": [1, 2],
        "parameters": {"binary_data_size": 8},
    }
    assert decode(tensor, blob).tolist() == values.tolist()
    words, blob = encode("w", [b"ab", "c"], "BYTES", binary=True)
    assert blob == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c"
    assert decode(words, blob).tolist() == [b"ab", b"c"]
    with pytest.raises(TensorError, match="4 bytes of binary data, the shape and datatype need 8"):
        decode(tensor, blob[:4])


def test_encode_json_casts_to_the_declared_datatype() -> None:
    tensor, blob = encode("y", [1, 2], "FP64", binary=False)
    assert tensor == {"name": "y", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}
    assert blob == b""


def test_shapes_fit_with_a_wildcard() -> None:
    assert fits((5, 4), (-1, 4)) and not fits((5, 3), (-1, 4)) and not fits((4,), (-1, 4))


# An entry script's module, as far as the signature reads it.
Declared = SimpleNamespace(
    OIP_INPUTS=[{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    OIP_OUTPUTS=[{"name": "a", "datatype": "INT64", "shape": [-1]}],
)


def test_a_declaration_gives_run_one_dict() -> None:
    sig = signature_of(Declared, None, set(), "score.py")
    assert sig.inputs == (TensorSpec("x", "FP32", (-1, 2)),)
    arrays = tensors(sig, [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}], b"")
    kwargs = run_arguments(sig, arrays, "data")
    assert list(kwargs) == ["data"] and kwargs["data"]["x"].tolist() == [[1.0, 2.0]]


def test_no_declaration_says_what_to_declare() -> None:
    with pytest.raises(NotDeclared, match=r"score\.py declares no tensors: declare") as refused:
        signature_of(object(), None, set(), "score.py")
    assert refused.value.status == 400 and "OIP_INPUTS" in refused.value.text


def test_a_wrong_declaration_is_the_scripts_fault() -> None:
    Wrong = SimpleNamespace(OIP_INPUTS=[{"name": "x", "datatype": "FLOAT", "shape": [1]}])
    with pytest.raises(TensorError, match="OIP_INPUTS") as refused:
        signature_of(Wrong, None, set(), "score.py")
    assert refused.value.status == 500


def test_inference_schema_samples_give_names_datatypes_and_shapes() -> None:
    import pandas as pd
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )
    from inference_schema.schema_decorators import input_schema, output_schema

    @input_schema("arr", NumpyParameterType(np.zeros((1, 3, 2), dtype=np.int32)))
    @input_schema("df", PandasParameterType(pd.DataFrame({"a": [1.0], "b": [2.0]})))
    @input_schema("k", StandardPythonParameterType(2))
    @output_schema(StandardPythonParameterType([1.0]))
    def run(arr: Any, df: Any, k: int = 1) -> Any:
        return arr

    sig = signature_of(object(), run, {"arr", "df"}, "score.py")
    assert [s.metadata() for s in sig.inputs] == [
        {"name": "arr", "datatype": "INT32", "shape": [-1, 3, 2]},
        {"name": "df", "datatype": "FP64", "shape": [-1, 2]},
        {"name": "k", "datatype": "INT64", "shape": [1]},
    ]
    assert [s.required for s in sig.inputs] == [True, True, False]
    assert sig.inputs[1].kind == PANDAS and sig.inputs[2].kind == PYTHON
    assert sig.outputs[0].metadata() == {"name": "output-0", "datatype": "FP64", "shape": [-1]}
    arrays = {"df": np.array([[1.0, 2.0]]), "k": np.array([3])}
    kwargs = run_arguments(sig, arrays, "arr")
    assert kwargs["k"] == 3 and type(kwargs["k"]) is int
    assert list(kwargs["df"].columns) == ["a", "b"]


SIG = Signature(
    (TensorSpec("x", "FP32", (-1, 2)), TensorSpec("y", "INT64", (1,), required=False)),
    (TensorSpec("a", "FP32", (-1,)), TensorSpec("b", "BYTES", (-1,))),
    True,
)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (None, "needs 'inputs'"),
        (
            [{"name": "z", "datatype": "FP32", "shape": [1], "data": [1]}],
            "unexpected input 'z': the model takes x, y",
        ),
        (
            [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}],
            "datatype 'FP64', expected FP32",
        ),
        (
            [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}],
            r"shape \[1, 3\], expected \[-1, 2\]",
        ),
        ([{"name": "y", "datatype": "INT64", "shape": [1], "data": [1]}], "lacks input 'x'"),
        ([{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}] * 2, "given twice"),
    ],
)
def test_request_inputs_are_checked_against_the_signature(inputs: Any, message: str) -> None:
    with pytest.raises(TensorError, match=message):
        tensors(SIG, inputs, b"")


def test_binary_inputs_take_the_body_after_the_header_in_order() -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "y",
                    "datatype": "INT64",
                    "shape": [1],
                    "parameters": {"binary_data_size": 8},
                },
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": 8},
                },
            ]
        }
    ).encode()
    blobs = np.array([7], "<i8").tobytes() + np.array([1, 2], "<f4").tobytes()
    request = Request(
        "POST",
        "/v2/models/m/infer",
        "",
        [(b"inference-header-content-length", str(len(header)).encode())],
        header + blobs,
    )
    doc, tail = read_request(request)
    arrays = tensors(SIG, doc["inputs"], tail)
    assert arrays["y"].tolist() == [7] and arrays["x"].tolist() == [[1.0, 2.0]]
    with pytest.raises(TensorError, match="more binary data"):
        tensors(SIG, doc["inputs"], tail + b"x")


def test_results_become_named_outputs() -> None:
    assert outputs_of(SIG, {"b": ["s"]}) == [("b", ["s"])]
    assert outputs_of(SIG, ([1.0], ["s"])) == [("a", [1.0]), ("b", ["s"])]
    assert outputs_of(SIG, 3.0) == [("a", 3.0)]
    assert outputs_of(Signature((), (), True), [1, 2]) == [("output-0", [1, 2])]


def test_requested_outputs_and_binary_answers() -> None:
    doc = {"outputs": [{"name": "b", "parameters": {"binary_data": True}}]}
    wanted = requested_outputs(doc)
    assert wanted == {"b": True}
    answer = response({"model_name": "m"}, [("a", [1.0]), ("b", ["hi"])], SIG, wanted)
    split = int(dict(answer.headers)[b"inference-header-content-length"])
    head = json.loads(answer.body[:split])
    assert head["outputs"] == [
        {"name": "b", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}
    ]
    assert answer.body[split:] == struct.pack("<I", 2) + b"hi"
    plain = response({"model_name": "m"}, [("a", [1.0])], SIG, requested_outputs({}))
    assert json.loads(plain.body)["outputs"][0]["data"] == [1.0]
    with pytest.raises(TensorError, match="unknown output 'c': the model gives a"):
        response({}, [("a", [1.0])], SIG, {"c": False})


def test_router_errors_take_the_protocols_shape() -> None:
    table = RouteTable()
    assert front.admission(table, "GET", "/v2/health/live", []) is None  # answered by handle
    starting = front.admission(table, "GET", "/v2/models/m", [])
    assert starting is not None and starting.status == 503
    assert json.loads(starting.body) == {
        "error": "the router is starting and has no route table yet"
    }
    wrong = front.admission(table, "GET", "/v2/models/m/infer", [])
    assert wrong is not None and wrong.status == 405
    unknown = front.admission(table, "GET", "/v2/nothing", [])
    assert unknown is not None and json.loads(unknown.body) == {"error": "no route /v2/nothing"}
    modelport = Response(503, b'{"error": {"code": "queue_full", "message": "full"}}', [])
    assert json.loads(front.reshaped(modelport).body) == {"error": "full"}
    v1 = Response(404, b'{"message": "gone"}', [])
    assert json.loads(front.reshaped(v1).body) == {"error": "gone"}


def _table() -> RouteTable:
    from modelport.router.table import build_table

    digest = hashlib.sha256(b"k").hexdigest()
    svc = {"replicas": [["127.0.0.1", 1000]], "keyDigests": [digest]}
    doc = {
        "revision": 1,
        "services": {
            "svc": svc,
            "ep-blue": {**svc, "hidden": True},
            "ep-green": {**svc, "hidden": True},
        },
        "endpoints": {
            "ep": {
                "versions": [
                    {"name": "blue", "route": "ep-blue", "share": 100},
                    {"name": "green", "route": "ep-green", "share": 0},
                ]
            }
        },
    }
    return build_table(doc, RouteTable())


KEY = [(b"authorization", b"Bearer k")]


def test_models_resolve_to_a_service_or_an_endpoints_version() -> None:
    table = _table()
    assert front.resolve(table, OipPath(INFER, "svc"), KEY) == (table.routes["svc"], "")
    route, version = front.resolve(table, OipPath(INFER, "ep"), KEY)  # type: ignore[misc]
    assert (route.name, version) == ("ep-blue", "blue")  # the split: green has no share
    pinned = front.resolve(table, OipPath(INFER, "ep"), [(b"azureml-model-deployment", b"green")])
    assert isinstance(pinned, tuple) and pinned[1] == "green"
    assert front.resolve(table, OipPath(INFER, "ep", "green"), [])[1] == "green"  # type: ignore[index]
    for oip, message in [
        (OipPath(INFER, "svc", "1"), "service 'svc' has no versions"),
        (OipPath(INFER, "ep", "red"), "model 'ep' has no version 'red' (it has blue, green)"),
        (OipPath(INFER, "nope"), "model 'nope' not found"),
    ]:
        answer = front.resolve(table, oip, [])
        assert isinstance(answer, Response) and answer.status == 404
        assert message in json.loads(answer.body)["error"]


def test_admission_checks_the_key_of_a_service_or_of_any_endpoint_version() -> None:
    table = _table()
    assert front.admission(table, "POST", "/v2/models/svc/infer", KEY) is None
    assert front.admission(table, "POST", "/v2/models/ep/infer", KEY) is None
    for path in ("/v2/models/svc/infer", "/v2/models/ep/infer"):
        refused = front.admission(table, "POST", path, [(b"authorization", b"Bearer x")])
        assert refused is not None and refused.status == 401
        assert isinstance(json.loads(refused.body)["error"], str)
    unknown = front.admission(table, "GET", "/v2/models/nope", KEY)
    assert unknown is not None and unknown.status == 404


def test_the_docs_declaration_example_is_read_as_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "open-inference-protocol.md").read_text()
    example = next(b for b in text.split("```python\n")[1:] if "OIP_INPUTS" in b).split("```")[0]
    namespace: dict[str, Any] = {}
    exec(example, namespace)
    sig = signature_of(SimpleNamespace(**namespace), None, set(), "score.py")
    assert [s.metadata() for s in sig.inputs] == namespace["OIP_INPUTS"]
    assert [s.metadata() for s in sig.outputs] == namespace["OIP_OUTPUTS"]
