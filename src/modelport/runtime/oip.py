"""Open Inference Protocol (v2) routes of a replica, over the script's own run().

The router has checked the credential and holds a slot for ``infer``; here a
request becomes run()'s arguments (see ``signature``) and run()'s result becomes
output tensors.  run() returning a dict gives one output per key; a tuple or list as
long as the declared outputs (two or more) one per declared output; anything else
one output, named after the first declared one (``output-0`` if none).  Errors are
the protocol's ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modelport.httpserver import Request, Response
from modelport.oippath import INFER, LIVE, MODEL, MODEL_READY, READY, OipPath, parse
from modelport.runtime.counters import COUNTERS
from modelport.runtime.script import RAW, EntryScript, ScoringTimeout
from modelport.runtime.signature import (
    DEFAULT_OUTPUT,
    NUMPY,
    PANDAS,
    PYTHON,
    Signature,
    TensorSpec,
    signature_of,
)
from modelport.runtime.tensors import TensorError, decode, encode, fits

log = logging.getLogger("modelport.runtime")

JSON = (b"content-type", b"application/json")
HEADER_LENGTH = b"inference-header-content-length"
PLATFORM = "modelport"
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
FAILED = (b"x-ms-run-function-failed", b"True")
RAW_REFUSED = (
    "@rawhttp scripts are not served over the Open Inference Protocol: their run() takes "
    "the HTTP request; use /score"
)
NO_NUMPY = "the Open Inference Protocol needs numpy in the service's environment"
Run = Callable[[dict[str, Any]], Awaitable[Any]]


def oip_error(status: int, text: str, *extra: tuple[bytes, bytes]) -> Response:
    return Response(status, json.dumps({"error": text}).encode(), [JSON, *extra])


def _ok(doc: dict[str, Any]) -> Response:
    return Response(200, json.dumps(doc).encode(), [JSON])


class OipRoutes:
    """The v2 routes; the script's signature is read at the first request that needs it."""

    def __init__(self, script: EntryScript, run: Run) -> None:
        self.script = script
        self.run = run
        self._signature: Signature | TensorError | None = None

    def signature(self) -> Signature:
        if self._signature is None:
            script = self.script
            try:
                if script.mode == RAW:
                    raise TensorError(RAW_REFUSED)
                _need_numpy()
                self._signature = signature_of(
                    script.module, script.schema_fn, script.required, script.path.name
                )
            except TensorError as exc:
                self._signature = exc
        if isinstance(self._signature, TensorError):
            raise self._signature
        return self._signature

    async def handle(self, request: Request) -> Response:
        oip = parse(request.path)
        if oip is None:
            return oip_error(404, f"no route {request.path}")
        want = "POST" if oip.kind == INFER else "GET"
        if request.method != want:
            return oip_error(405, f"method {request.method} is not allowed on {request.path}")
        try:
            if oip.kind in (LIVE, READY):
                return _ok({oip.kind: True})
            if oip.kind == MODEL_READY:  # answering at all: init() is done
                return _ok({"name": oip.model, "ready": True})
            if oip.kind == MODEL:
                return _ok(self._metadata(oip))
            if oip.kind == INFER:
                return await self._infer(oip, request)
            return oip_error(404, f"no route {request.path}")
        except TensorError as exc:
            if exc.status >= 500:
                log.error("%s %s answered %d: %s", request.method, request.path, exc.status, exc)
            return oip_error(exc.status, exc.text)

    def _metadata(self, oip: OipPath) -> dict[str, Any]:
        sig = self.signature()
        doc: dict[str, Any] = {
            "name": oip.model,
            "versions": [oip.version] if oip.version else [],
            "platform": PLATFORM,
            "inputs": [s.metadata() for s in sig.inputs],
            "outputs": [s.metadata() for s in sig.outputs],
        }
        return doc

    async def _infer(self, oip: OipPath, request: Request) -> Response:
        sig = self.signature()
        doc, blobs = read_request(request)
        arrays = tensors(sig, doc.get("inputs"), blobs)
        wanted = requested_outputs(doc)
        kwargs = run_arguments(sig, arrays, self.script.input_param)
        started = time.perf_counter()
        try:
            result = await self.run(kwargs)
        except ScoringTimeout:
            log.error("run() did not finish within the scoring timeout")
            return oip_error(500, "Scoring timeout", FAILED)
        except Exception:
            log.exception("run() raised")
            return oip_error(500, RUN_FAILED, FAILED)
        finally:
            COUNTERS.observe_run(time.perf_counter() - started)
        named = outputs_of(sig, result)
        head: dict[str, Any] = {"model_name": oip.model}
        if oip.version:
            head["model_version"] = oip.version
        if isinstance(doc.get("id"), str):
            head["id"] = doc["id"]
        return response(head, named, sig, wanted)


def _need_numpy() -> None:
    """Tensors are numpy arrays: say so once, rather than fail in each request."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise TensorError(NO_NUMPY, 500) from None


def read_request(request: Request) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary data after it (binary-data extension)."""
    body = request.body
    length = next((v for k, v in request.headers if k == HEADER_LENGTH), None)
    split = len(body)
    if length is not None:
        try:
            split = int(length)
        except ValueError:
            split = -1
        if not 0 <= split <= len(body):
            raise TensorError(f"Inference-Header-Content-Length {length!r} does not fit the body")
    try:
        doc = json.loads(body[:split])
    except (ValueError, RecursionError):
        raise TensorError("the request body is no JSON inference request") from None
    if not isinstance(doc, dict):
        raise TensorError("the request body must be a JSON object with 'inputs'")
    return doc, body[split:]


def tensors(sig: Signature, inputs: Any, blobs: bytes) -> dict[str, Any]:
    """Each request input as an array, checked against the declared datatype and shape."""
    if not isinstance(inputs, list) or not inputs:
        raise TensorError("the request needs 'inputs': a list of tensors")
    arrays: dict[str, Any] = {}
    at = 0
    for item in inputs:
        if not isinstance(item, dict):
            raise TensorError("each input must be an object with name, datatype, shape, data")
        spec = sig.input(str(item.get("name")))
        if spec.name in arrays:
            raise TensorError(f"input {spec.name!r} is given twice")
        if item.get("datatype") != spec.datatype:
            given = item.get("datatype")
            text = f"input {spec.name!r} has datatype {given!r}, expected {spec.datatype}"
            raise TensorError(text)
        size = _binary_size(item)
        blob = None
        if size is not None:
            blob, at = blobs[at : at + size], at + size
            if len(blob) != size:
                raise TensorError(
                    f"input {spec.name!r}: the body has less binary data than declared"
                )
        array = decode(item, blob)
        if not fits(array.shape, spec.shape):
            text = f"input {spec.name!r} has shape {list(array.shape)}, expected {list(spec.shape)}"
            raise TensorError(text)
        arrays[spec.name] = array
    missing = [s.name for s in sig.inputs if s.required and s.name not in arrays]
    if missing:
        raise TensorError(f"the request lacks input {', '.join(map(repr, missing))}")
    if at != len(blobs):
        raise TensorError("the body has more binary data than the inputs declare")
    return arrays


def _binary_size(item: dict[str, Any]) -> int | None:
    params = item.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None and (type(size) is not int or size < 0):
        raise TensorError(f"input {item.get('name')!r}: binary_data_size must be an integer >= 0")
    return size


def requested_outputs(doc: dict[str, Any]) -> dict[str, bool] | bool:
    """Requested output name -> binary?, or (none named: all) whether all are binary."""
    params = doc.get("parameters")
    binary = bool(params.get("binary_data_output")) if isinstance(params, dict) else False
    outputs = doc.get("outputs")
    if outputs is None:
        return binary
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise TensorError("'outputs' must be a list of objects with a name")
    wanted = {}
    for out in outputs:
        p = out.get("parameters")
        wanted[str(out.get("name"))] = (
            bool(p.get("binary_data", binary)) if isinstance(p, dict) else binary
        )
    return wanted


def run_arguments(sig: Signature, arrays: dict[str, Any], input_param: str) -> dict[str, Any]:
    """run()'s keyword arguments: one dict for a declared script, else one per parameter
    in the form its inference-schema type takes (an array, DataFrame records, a value)."""
    if sig.declared:
        return {input_param: arrays}
    return {name: _as_parameter(sig.input(name), array) for name, array in arrays.items()}


def _as_parameter(spec: TensorSpec, array: Any) -> Any:
    if spec.kind == NUMPY:
        return array
    if spec.kind == PANDAS:
        import pandas as pd

        return pd.DataFrame(array, columns=list(spec.columns))
    if spec.kind == PYTHON and spec.shape == (1,):
        return array.reshape(-1)[0].item() if array.dtype != object else array.reshape(-1)[0]
    return array.tolist()


def outputs_of(sig: Signature, result: Any) -> list[tuple[str, Any]]:
    """run()'s result as (output name, value) pairs (see the module docstring)."""
    if isinstance(result, dict):
        return [(str(k), v) for k, v in result.items()]
    declared = sig.outputs
    if isinstance(result, tuple | list) and len(declared) > 1 and len(result) == len(declared):
        return [(spec.name, value) for spec, value in zip(declared, result, strict=True)]
    return [(declared[0].name if declared else DEFAULT_OUTPUT, result)]


def response(
    head: dict[str, Any],
    named: list[tuple[str, Any]],
    sig: Signature,
    wanted: dict[str, bool] | bool,
) -> Response:
    """The infer answer: JSON, or JSON and binary data when any output asks for it."""
    values = dict(named)
    if isinstance(wanted, dict):
        unknown = [n for n in wanted if n not in values]
        if unknown:
            known = ", ".join(values)
            raise TensorError(
                f"unknown output {', '.join(map(repr, unknown))}: the model gives {known}"
            )
        chosen = list(wanted.items())
    else:
        chosen = [(name, wanted) for name in values]
    types = {s.name: s.datatype for s in sig.outputs}
    outputs, blobs = [], []
    for name, binary in chosen:
        tensor, blob = encode(name, values[name], types.get(name), binary)
        outputs.append(tensor)
        blobs.append(blob)
    header = json.dumps({**head, "outputs": outputs}).encode()
    tail = b"".join(blobs)
    binary = wanted if isinstance(wanted, bool) else any(wanted.values())
    if not binary:
        return Response(200, header, [JSON])
    return Response(
        200,
        header + tail,
        [
            (b"content-type", b"application/octet-stream"),
            (HEADER_LENGTH, str(len(header)).encode()),
        ],
    )
