"""The scoring server's routes (contract section 5.2), free of any HTTP protocol code.

``Dataplane.handle`` takes a parsed request and returns status, headers and body;
the protocol module only moves bytes.  Every request is answered: input that cannot
be read is a 4xx, a run() that raises or times out a 500 as in v1, and a value or
response that cannot be sent a 500 with v1's internal-error message; each with its
``{"message": ...}`` body and a log line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from modelport import tracing
from modelport.httpserver import Request, Response
from modelport.runtime import gate
from modelport.runtime.api import Headers
from modelport.runtime.batcher import Batcher
from modelport.runtime.counters import COUNTERS
from modelport.runtime.inputs import (
    BadInput,
    body_text,
    query_json,
    query_values,
    schema_arguments,
    schema_body,
)
from modelport.runtime.oip import OipRoutes
from modelport.runtime.request_context import REQUEST_ID
from modelport.runtime.script import (
    PLAIN,
    RAW,
    EntryScript,
    InlineInvoker,
    Invoker,
    ScoringTimeout,
)
from modelport.runtime.swagger import swagger_document

log = logging.getLogger("modelport.runtime")

SERVER_VERSION = "modelport-runtime/0.1"
MAX_ID_LENGTH = 100
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL = "An unexpected internal error occurred. Check the logs for more info."
JSON = (b"content-type", b"application/json")
FAILED = (b"x-ms-run-function-failed", b"True")
# What run() returns nearly always: sent with one json.dumps, nothing else looked at.
_JSON_TYPES = frozenset({dict, list, str, int, float, bool})


def message(status: int, text: str, *extra: tuple[bytes, bytes]) -> Response:
    return Response(status, json.dumps({"message": text}).encode(), [JSON, *extra])


class Dataplane:
    def __init__(
        self,
        script: EntryScript,
        invoker: Invoker | InlineInvoker,
        timeout_ms: int,
        service: str,
        server: tuple[str, int] = ("127.0.0.1", 5001),
        replica_key: bytes | None = None,
    ) -> None:
        self.script = script
        self.replica_key = replica_key  # None: anyone may call (see gate.py)
        self.invoker = invoker
        self.timeout_ms = timeout_ms
        self.service = service
        self.server = server
        self.wsgi: Any = None
        self.oip: OipRoutes | None = None  # made at the first /v2 request
        # @batched: concurrent requests share run() calls (runtime/batcher.py)
        self.batcher = Batcher(script.batch, self._run_batch) if script.batch else None
        # enable_app_insights: spans for each request and run() (None: no tracing here)
        self.tracer = tracing.tracer(service) if os.environ.get(tracing.SWITCH) == "1" else None
        if script.mode == RAW:  # werkzeug is loaded for @rawhttp scripts only
            from modelport.runtime import wsgi

            self.wsgi = wsgi

    async def handle(self, request: Request) -> Response:
        key = self.replica_key
        if key is not None and not gate.is_liveness(request) and not gate.admits(request, key):
            return message(403, gate.REFUSED)
        headers = dict(request.headers)  # names arrive lower-cased; one index per request
        ids, too_long = _request_ids(headers)
        if too_long:
            response = message(431, f"header {too_long} is longer than {MAX_ID_LENGTH} characters")
        elif request.path == "/score":
            REQUEST_ID.set(ids[0][1].decode("latin-1"))
            response = await self._score_route(request, headers)
        elif request.path in ("/", ""):
            response = Response(200, b"Healthy", [(b"content-type", b"text/plain")])
        elif request.path == "/swagger.json":
            response = self._swagger(request)
        elif request.path.startswith("/v2"):  # Open Inference Protocol: see runtime/oip.py
            REQUEST_ID.set(ids[0][1].decode("latin-1"))
            response = await self._oip_routes().handle(request)
        else:
            response = message(404, f"no route {request.path}; use /score or /swagger.json")
        response.headers.extend(ids)
        response.headers.append((b"x-ms-server-version", SERVER_VERSION.encode()))
        return response

    async def _score_route(self, request: Request, headers: dict[bytes, bytes]) -> Response:
        if request.method not in ("GET", "POST"):
            if request.method != "OPTIONS":
                return message(405, f"method {request.method} is not allowed on /score")
            if self.wsgi is None:  # v1 hands OPTIONS to @rawhttp run()s, answers the others
                return Response(200)
        started = time.perf_counter()
        if self.tracer is None:
            response = await self._score(request, headers)
        else:
            response = await self._score_traced(request, headers)
        elapsed = time.perf_counter() - started
        COUNTERS.observe_run(elapsed)
        elapsed_ms = elapsed * 1000
        response.headers.append((b"x-ms-run-fn-exec-ms", f"{elapsed_ms:.3f}".encode()))
        return response

    async def _score(
        self, request: Request, headers: dict[bytes, bytes], tracer: Any = None
    ) -> Response:
        try:
            kwargs = self._arguments(request, headers)
        except BadInput as exc:
            log.info("%s %s answered %d: %s", request.method, request.path, exc.status, exc.text)
            return message(exc.status, exc.text)
        try:
            if self.batcher is not None:
                result = await self.batcher.submit(kwargs[self.script.input_param])
            elif tracer is not None:
                with tracer.start_as_current_span("run()"):
                    result = await self._run(kwargs)
            elif isinstance(self.invoker, InlineInvoker):
                result = self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)
            else:
                result = await self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)
        except ScoringTimeout:
            log.error("run() did not finish within the scoring timeout of %d ms", self.timeout_ms)
            return message(500, f"Scoring timeout after {self.timeout_ms} ms", FAILED)
        except Exception:
            log.exception("run() raised")
            return message(500, RUN_FAILED, FAILED)
        return self._encode_result(result)

    async def _score_traced(self, request: Request, headers: dict[bytes, bytes]) -> Response:
        """A span for the request (the router's child), with run()'s inside it: spans a
        score.py makes in run() are that one's children."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        context = tracing.extract(request.headers)
        tracer = self.tracer
        assert tracer is not None
        with tracer.start_as_current_span(
            f"{request.method} /score", context=context, kind=SpanKind.SERVER
        ) as span:
            span.set_attribute("modelport.service", self.service)
            response = await self._score(request, headers, tracer)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response

    def _arguments(self, request: Request, headers: dict[bytes, bytes]) -> dict[str, Any]:
        script = self.script
        kwargs: dict[str, Any]
        if script.mode == PLAIN:
            data = query_json(request.query) if request.method == "GET" else body_text(request)
            kwargs = {script.input_param: data}
        elif script.mode == RAW:
            raw = self.wsgi.request_for(request, self.server, not self._inline)
            kwargs = {script.input_param: raw}
        elif request.method == "GET":
            kwargs = schema_arguments(query_values(request.query), script.params, script.required)
        else:
            body = schema_body(request, headers.get(b"content-type", b""))
            kwargs = schema_arguments(body, script.params, script.required)
        if script.wants_headers:
            kwargs["request_headers"] = Headers(request.headers)
        return kwargs

    def _oip_routes(self) -> OipRoutes:
        if self.oip is None:
            self.oip = OipRoutes(self.script, self._run_one)
        return self.oip

    async def _run_one(self, kwargs: dict[str, Any]) -> Any:
        """One input: alone for a plain run(), in a batch for a @batched one."""
        if self.batcher is not None:
            return await self.batcher.submit(kwargs[self.script.input_param])
        return await self._run(kwargs)

    async def _run_batch(self, inputs: list[Any]) -> Any:
        return await self._run({self.script.input_param: inputs})

    async def _run(self, kwargs: dict[str, Any]) -> Any:
        if isinstance(self.invoker, InlineInvoker):
            return self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)
        return await self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)

    @property
    def _inline(self) -> bool:
        return isinstance(self.invoker, InlineInvoker)

    def _encode_result(self, result: Any) -> Response:
        try:
            if type(result) in _JSON_TYPES:
                return Response(200, json.dumps(result).encode(), [JSON])
            if result is None:  # v1 sends an empty object for None
                return Response(200, b"{}", [JSON])
            wrappers = sys.modules.get("werkzeug.wrappers.response")
            if wrappers is not None and isinstance(result, wrappers.Response):
                from modelport.runtime.wsgi import to_response

                return to_response(result)
            return Response(200, json.dumps(result).encode(), [JSON])
        except Exception as exc:  # anything a value's or response's own code may raise
            log.error(
                "run() returned %s, which cannot be sent (%s: %s); answered 500",
                _describe(result),
                type(exc).__name__,
                _first_line(exc),
            )
            return message(500, INTERNAL)

    def _swagger(self, request: Request) -> Response:
        version = (parse_qs(request.query).get("version") or ["2"])[0]
        try:
            doc = swagger_document(self.script.schema_fn, version, self.service)
            if doc is None:
                return message(404, f"swagger version {version} is not supported; use 2, 3 or 3.1")
            return Response(200, json.dumps(doc).encode(), [JSON])
        except Exception as exc:
            log.error(
                "swagger.json (version %s) cannot be made: %s: %s",
                version,
                type(exc).__name__,
                _first_line(exc),
            )
            return message(500, INTERNAL)


def _describe(value: Any) -> str:
    kind = type(value)
    module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    return f"a value of type {module}{kind.__qualname__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:300] if text else ""


def _request_ids(
    headers: dict[bytes, bytes],
) -> tuple[list[tuple[bytes, bytes]], str | None]:
    request_id = headers.get(b"x-request-id") or str(uuid.uuid4()).encode()
    client_id = headers.get(b"x-ms-client-request-id")
    legacy = headers.get(b"x-ms-request-id") or client_id or request_id
    for name, value in (
        (b"x-request-id", request_id),
        (b"x-ms-client-request-id", client_id),
        (b"x-ms-request-id", legacy),
    ):
        if value and len(value) > MAX_ID_LENGTH:
            return [], name.decode()
    out = [(b"x-request-id", request_id), (b"x-ms-request-id", legacy)]
    if client_id:
        out.append((b"x-ms-client-request-id", client_id))
    trace = headers.get(b"traceid")
    if trace:
        out.append((b"TraceId", trace))
    return out, None
