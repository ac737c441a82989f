"""The scoring server's routes (contract section 5.2), free of any HTTP protocol code.

``Dataplane.handle`` takes a parsed request and returns status, headers and body;
the protocol module only moves bytes.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from modelport.httpserver import Request, Response
from modelport.runtime.api import AMLRequest, AMLResponse, Headers
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


def message(status: int, text: str, *extra: tuple[bytes, bytes]) -> Response:
    return Response(status, json.dumps({"message": text}).encode(), [JSON, *extra])


class Dataplane:
    def __init__(
        self, script: EntryScript, invoker: Invoker | InlineInvoker, timeout_ms: int, service: str
    ) -> None:
        self.script = script
        self.invoker = invoker
        self.timeout_ms = timeout_ms
        self.service = service

    async def handle(self, request: Request) -> Response:
        headers = dict(request.headers)  # names arrive lower-cased; one index per request
        ids, too_long = _request_ids(headers)
        if too_long:
            response = message(431, f"header {too_long} is longer than {MAX_ID_LENGTH} characters")
        elif request.path in ("/", ""):
            response = Response(200, b"Healthy", [(b"content-type", b"text/plain")])
        elif request.path == "/score":
            response = await self._score_route(request, headers)
        elif request.path == "/swagger.json":
            response = self._swagger(request)
        else:
            response = message(404, f"no route {request.path}; use /score or /swagger.json")
        response.headers.extend(ids)
        response.headers.append((b"x-ms-server-version", SERVER_VERSION.encode()))
        return response

    async def _score_route(self, request: Request, headers: dict[bytes, bytes]) -> Response:
        if request.method == "OPTIONS":
            return Response(200)
        if request.method not in ("GET", "POST"):
            return message(405, f"method {request.method} is not allowed on /score")
        started = time.perf_counter()
        response = await self._score(request, headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers.append((b"x-ms-run-fn-exec-ms", f"{elapsed_ms:.3f}".encode()))
        return response

    async def _score(self, request: Request, headers: dict[bytes, bytes]) -> Response:
        kwargs, problem = self._arguments(request, headers)
        if problem is not None:
            return problem
        try:
            if isinstance(self.invoker, InlineInvoker):
                result = self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)
            else:
                result = await self.invoker.call(self.script.run, kwargs, self.timeout_ms / 1000)
        except ScoringTimeout:
            return message(
                500,
                f"Scoring timeout after {self.timeout_ms} ms",
                (b"x-ms-run-function-failed", b"True"),
            )
        except Exception:
            log.exception("run() raised")
            return message(500, RUN_FAILED, (b"x-ms-run-function-failed", b"True"))
        return _encode_result(result)

    def _arguments(
        self, request: Request, headers: dict[bytes, bytes]
    ) -> tuple[dict[str, Any], Response | None]:
        script = self.script
        extra = {"request_headers": Headers(request.headers)} if script.wants_headers else {}
        if script.mode == RAW:
            raw = AMLRequest(
                request.method, request.path, request.query, Headers(request.headers), request.body
            )
            return {script.params[0]: raw, **extra}, None
        if script.mode == PLAIN:
            if request.method == "GET":
                return {script.params[0]: json.dumps(_query_values(request.query)), **extra}, None
            try:
                return {script.params[0]: request.body.decode("utf-8"), **extra}, None
            except UnicodeDecodeError:
                return {}, message(400, "POST body must be UTF-8 text")
        return self._schema_arguments(request, headers, extra)

    def _schema_arguments(
        self, request: Request, headers: dict[bytes, bytes], extra: dict[str, Any]
    ) -> tuple[dict[str, Any], Response | None]:
        if request.method == "GET":
            body: Any = _query_values(request.query)
        else:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            mimetype = content_type.split(";")[0].strip().lower()
            if mimetype != "application/json":
                return {}, message(415, "Expects Content-Type to be application/json")
            try:
                body = json.loads(request.body)
            except ValueError:
                return {}, message(400, "POST body should be a valid JSON document.")
            if not isinstance(body, dict):
                return {}, message(400, "POST body should be a JSON dictionary.")
        kwargs = {k: v for k, v in body.items() if k in self.script.params}
        for name in sorted(self.script.required - set(kwargs)):
            return {}, message(400, f"A value is not provided for the '{name}' parameter.")
        return {**kwargs, **extra}, None

    def _swagger(self, request: Request) -> Response:
        version = (parse_qs(request.query).get("version") or ["2"])[0]
        doc = swagger_document(self.script.schema_fn, version, self.service)
        if doc is None:
            return message(404, f"swagger version {version} is not supported; use 2, 3 or 3.1")
        return Response(200, json.dumps(doc).encode(), [JSON])


def _encode_result(result: Any) -> Response:
    if isinstance(result, AMLResponse):
        headers = [
            (k.encode("latin-1"), str(v).encode("latin-1")) for k, v in result.headers.items()
        ]
        return Response(result.status_code, result.body, headers)
    try:
        return Response(200, json.dumps(result).encode(), [JSON])
    except (TypeError, ValueError):
        log.exception("run() returned a value that is not JSON-serialisable")
        return message(500, INTERNAL)


def _query_values(query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        decoded = [_json_or_text(v) for v in values]
        out[key] = decoded[0] if len(decoded) == 1 else decoded
    return out


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


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
