"""Open Inference Protocol (v2) at the router: ``/v2/...`` for every service.

A model is a service (or an endpoint, through its split or the version the path or
the version header pins).  ``/v2/health/live`` is open as ``/healthz`` is;
``/v2`` and ``/v2/health/ready`` are open too, as they name no service whose key
could be asked for.  The model routes take the service's key or token, checked as
for ``/score``; ``infer`` then goes to a replica exactly as a scoring request does
(same slots, queue, deadline and counters), metadata to any ready replica without a
slot, as swagger.json does.  Every error is the protocol's ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from modelport.httpserver import Request, Response
from modelport.oippath import INFER, LIVE, MODEL_READY, READY, SERVER, OipPath, model_path, parse
from modelport.router.endpoint import pick
from modelport.router.table import Route, RouteTable

JSON = (b"content-type", b"application/json")
VERSION_HEADER = b"azureml-model-deployment"  # as proxy.py: pins, and names, a version
CHALLENGE = (b"www-authenticate", b'Bearer realm="modelport"')
Headers = list[tuple[bytes, bytes]]


def oip_error(status: int, text: str, *extra: tuple[bytes, bytes]) -> Response:
    return Response(status, json.dumps({"error": text}).encode(), [JSON, *extra])


def _package_version() -> str:
    try:
        return version("modelport")
    except PackageNotFoundError:
        return "0"


SERVER_METADATA = Response(
    200,
    json.dumps(
        {"name": "modelport", "version": _package_version(), "extensions": ["binary_tensor_data"]}
    ).encode(),
    [JSON],
)
LIVE_ANSWER = Response(200, b'{"live":true}', [JSON])
READY_ANSWER = Response(200, b'{"ready":true}', [JSON])
NOT_READY = Response(503, b'{"ready":false}', [JSON, (b"retry-after", b"1")])
STARTING = oip_error(503, "the router is starting and has no route table yet")


class Scorer(Protocol):
    """What the proxy does for this module: the I/O, with its slots and pool."""

    table: RouteTable

    async def score_at(self, route: Route, request: Request, target: str) -> Response: ...

    async def fetch(self, route: Route, request: Request, target: str) -> Response: ...


def admission(table: RouteTable, method: str, path: str, headers: Headers) -> Response | None:
    """The answer before the body is read (see ``proxy.admission``), or None to read it:
    unknown paths, wrong methods, a service's missing key.  Health and server metadata
    are answered by ``handle``: an answer here closes the connection."""
    oip = parse(path)
    if oip is None:
        return oip_error(404, f"no route {path}")
    if method != ("POST" if oip.kind == INFER else "GET"):
        return oip_error(405, f"method {method} is not allowed on {path}")
    if oip.kind in (LIVE, SERVER, READY):
        return None
    if table.revision == 0:
        return STARTING
    route = table.public.get(oip.model)
    if route is not None:
        return _auth(route, headers) if route.auth else None
    endpoint = table.endpoints.get(oip.model)
    if endpoint is None:
        return oip_error(404, f"model {oip.model!r} not found")
    # As for /score: let through a credential one of its versions takes; the version
    # the handler picks checks it again.
    versions = [table.routes[r] for r in endpoint.routes.values() if r in table.routes]
    refusals = [_auth(r, headers) for r in versions]
    return refusals[0] if versions and all(refusals) else None


def _server(table: RouteTable, oip: OipPath) -> Response | None:
    """The answers that concern no model."""
    if oip.kind == LIVE:
        return LIVE_ANSWER
    if oip.kind == SERVER:
        return SERVER_METADATA
    if oip.kind == READY:
        return READY_ANSWER if table.revision else NOT_READY
    return STARTING if table.revision == 0 else None


async def handle(scorer: Scorer, request: Request) -> Response:
    oip = parse(request.path)
    if oip is None or not request.prechecked:  # the server's precheck did not run
        refused = admission(scorer.table, request.method, request.path, request.headers)
        if refused is not None or oip is None:
            return refused or oip_error(404, f"no route {request.path}")
    early = _server(scorer.table, oip)
    if early is not None:
        return early
    found = resolve(scorer.table, oip, request.headers)
    if isinstance(found, Response):
        return found
    route, chosen = found
    # A service's credential was checked at admission; an endpoint's version's is not yet.
    refused = None if request.prechecked and not chosen else _auth(route, request.headers)
    if refused is not None:
        return refused
    if oip.kind == MODEL_READY:
        answer = ready(oip.model, route)
    elif oip.kind == INFER:
        answer = reshaped(await scorer.score_at(route, request, model_path(oip, chosen)))
    else:
        answer = reshaped(await scorer.fetch(route, request, model_path(oip, chosen)))
    if chosen:
        named = [*answer.headers, (VERSION_HEADER, chosen.encode())]
        answer = Response(answer.status, answer.body, named)
    return answer


def resolve(table: RouteTable, oip: OipPath, headers: Headers) -> tuple[Route, str] | Response:
    """The route serving ``oip``'s model and its endpoint version ("" for a service)."""
    route = table.public.get(oip.model)
    if route is not None:
        if oip.version:
            text = f"service {oip.model!r} has no versions: use /v2/models/{oip.model}"
            return oip_error(404, text)
        return route, ""
    endpoint = table.endpoints.get(oip.model)
    if endpoint is None:
        return oip_error(404, f"model {oip.model!r} not found")
    pinned = next((v for k, v in headers if k == VERSION_HEADER), None)
    chosen = oip.version or (
        pinned.decode("latin-1").strip() if pinned else pick(endpoint, headers)
    )
    route_name = endpoint.routes.get(chosen)
    if route_name is None:
        known = ", ".join(endpoint.routes)
        return oip_error(404, f"model {oip.model!r} has no version {chosen!r} (it has {known})")
    route = table.routes.get(route_name)
    if route is None:
        return oip_error(503, f"version {chosen!r} is starting", (b"retry-after", b"1"))
    return route, chosen


def ready(name: str, route: Route) -> Response:
    """Ready when a replica is: here, or at the sibling worker holding the slots."""
    if route.backends or route.forward is not None:
        return Response(200, json.dumps({"name": name, "ready": True}).encode(), [JSON])
    body = json.dumps({"name": name, "ready": False}).encode()
    return Response(503, body, [JSON, (b"retry-after", b"1")])


def _auth(route: Route, headers: Headers) -> Response | None:
    header = next((v for k, v in headers if k == b"authorization"), None)
    reason = route.auth_refusal(header)
    return None if reason is None else oip_error(401, reason, CHALLENGE)


def reshaped(response: Response) -> Response:
    """The router's and the v1 runtime's error bodies as the protocol's ``{"error": ...}``."""
    if response.status < 400:
        return response
    try:
        doc = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(doc, dict):
        return response
    inner = doc.get("error")
    text = inner.get("message") if isinstance(inner, dict) else doc.get("message")
    if not isinstance(text, str):
        return response
    return Response(response.status, json.dumps({"error": text}).encode(), response.headers)
