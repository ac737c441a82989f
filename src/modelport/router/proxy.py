"""Scoring requests: route lookup, key check, a replica slot, forward, answer.

``admission`` runs as soon as a request's headers are in (the server's precheck):
an unknown service, a wrong method or a missing or wrong credential is answered
there, before the body is read, so a client without one costs a header parse and
a hash.  A request it lets through to a service is not checked again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from asyncio import Future
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from modelport import tracing
from modelport.httpserver import Request, Response
from modelport.oippath import PREFIX as OIP_PREFIX
from modelport.oippath import parse as parse_oip
from modelport.router import auth, oip
from modelport.router.endpoint import Endpoint, pick
from modelport.router.requestlog import Entry, RequestLog
from modelport.router.shadow import Shadow, due, settle
from modelport.router.table import (
    REPLICA_KEY_HEADER,
    Backend,
    QueueFull,
    Route,
    RouteTable,
    Waiter,
    WaitTimeout,
    release,
)
from modelport.router.upstream import (
    ConnectFailed,
    PipelineBroken,
    Pool,
    UpstreamClosed,
    UpstreamResponse,
)

log = logging.getLogger("modelport.router")

PREFIX = "/api/v1/service/"
HEALTH_PATH = "/healthz"  # outside PREFIX: no service can be named into it
SCORE = "/score"  # the replica's path for a scoring request; OIP's infer has its own
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"host",
        b"content-length",
        b"authorization",
        b"date",
        REPLICA_KEY_HEADER,  # the router's own: a client's copy is never passed on
    }
)
JSON = (b"content-type", b"application/json")
TRACE_HEADERS = (b"traceparent", b"tracestate")
RETRY_AFTER = (b"retry-after", b"1")
# Pins an endpoint's version in a request, and names the one that answered.
VERSION_HEADER = b"azureml-model-deployment"
SCORING_METHODS = ("GET", "POST", "OPTIONS")


def error(
    status: int, code: str, message: str, *extra: tuple[bytes, bytes], **fields: object
) -> Response:
    body = json.dumps({"error": {"code": code, "message": message, **fields}}).encode()
    return Response(status, body, [JSON, *extra])


UNAUTHORIZED = error(
    401, "unauthorized", "missing or wrong key", (b"www-authenticate", b'Bearer realm="modelport"')
)
# Before the control plane has sent a table, no service is known yet: never a 404.
STARTING = error(503, "starting", "the router is starting and has no route table yet", RETRY_AFTER)
NO_BODY = error(400, "bad_request", "GET swagger.json takes no request body")
# Liveness only: says nothing of services, replicas or the table.
HEALTHY = Response(200, b'{"status":"ok"}', [JSON])
EXIT_WAIT_S = 0.5  # for the replica's supervisor to record why the replica exited
Headers = list[tuple[bytes, bytes]]


class Proxy:
    def __init__(self, token: str, requests: RequestLog | None = None) -> None:
        self.table = RouteTable()
        self.requests = requests  # one line per scoring request, when on
        self.pool = Pool()
        # Requests forwarded to a sibling worker carry the admin token: its admin port
        # takes them without a service key, and nobody else can.
        self._forward_auth = b"authorization: Bearer " + token.encode() + b"\r\n"
        self._copies: set[asyncio.Task[None]] = set()  # copies in flight, held till done

    def set_table(self, table: RouteTable) -> None:
        old, self.table = self.table, table
        for name, route in old.routes.items():
            if name not in table.routes:
                route.fail_waiters(LookupError(name))
        for route in table.routes.values():
            self._dispatch(route)  # new replicas take queued requests at once
        backends = [b for r in table.routes.values() for b in r.backends]
        self.pool.forget({(b.host, b.port) for b in backends})
        self.pool.paths = {(b.host, b.port): b.unix for b in backends if b.unix}
        if self.requests is not None:
            self.requests.versions = {
                r: (e.name, v) for e in table.endpoints.values() for v, r in e.routes.items()
            }

    def precheck(self, method: str, path: str, headers: Headers) -> Response | None:
        """The server's hook at headers complete (see ``admission``); a service's refusals
        count in its metrics, as the handler's did."""
        answer = admission(self.table, method, path, headers)
        if answer is not None and answer.status in (401, 405):
            if path.startswith(PREFIX):
                name = path[len(PREFIX) :].partition("/")[0]
            else:  # an OIP model route's refusal counts as a score's
                named = parse_oip(path)
                name = named.model if named is not None else ""
            route = self.table.public.get(name)
            if route is not None:
                route.lane.stats.record(answer.status, 0.0)
        return answer

    async def handle(self, request: Request) -> Response:
        path = request.path
        if not path.startswith(PREFIX):
            if path.startswith(OIP_PREFIX):
                return await oip.handle(self, request)
            return error(404, "not_found", f"no route {path}")
        name, _, action = path[len(PREFIX) :].partition("/")
        route = self.table.public.get(name)
        if route is None:
            endpoint = self.table.endpoints.get(name)
            if endpoint is not None:
                return await self._version(endpoint, action, request)
            if self.table.revision == 0:
                return STARTING
            return error(404, "not_found", f"service {name!r} not found")
        return await self._act(route, action, request, path, request.prechecked)

    async def _version(self, endpoint: Endpoint, action: str, request: Request) -> Response:
        """An endpoint's request: the version the client pins, else its sticky key's or
        the split's; the answer names the version that served it."""
        pinned = next((v for k, v in request.headers if k == VERSION_HEADER), None)
        if pinned:
            version = pinned.decode("latin-1").strip()
        elif endpoint.plain:
            version = endpoint.split.pick()
        else:
            version = pick(endpoint, request.headers)
        route_name = endpoint.routes.get(version)
        if route_name is None:
            known = ", ".join(endpoint.routes)
            text = f"endpoint {endpoint.name!r} has no version {version!r} (it has {known})"
            return error(404, "not_found", text)
        route = self.table.routes.get(route_name)
        if route is None:
            return error(503, "service_starting", f"version {version!r} is starting", RETRY_AFTER)
        path = f"{PREFIX}{endpoint.name}/{action}"
        if endpoint.shadows and not pinned and action == "score":
            return await self._mirrored(endpoint, route, request, path, version)
        response = await self._act(route, action, request, path)
        return _named(response, version)

    async def _mirrored(
        self, endpoint: Endpoint, route: Route, request: Request, path: str, version: str
    ) -> Response:
        """A live request some shadows get a copy of, sent once the live answer is
        ready: nothing the shadow does can delay, change or fail it."""
        started = time.monotonic()
        response = await self._act(route, "score", request, path)
        seconds = time.monotonic() - started
        # A request refused here (wrong key, method) is no live traffic to copy.
        if response is not UNAUTHORIZED and request.method in SCORING_METHODS:
            live = (response.status, response.body)
            for shadow in due(endpoint.shadows, endpoint.in_flight, endpoint.max_in_flight):
                # A request of its own: the client's disconnect concerns the live one only.
                copy = replace(request, on_disconnect=None)
                task = asyncio.create_task(self._shadow(endpoint, shadow, copy, live, seconds))
                self._copies.add(task)
                task.add_done_callback(self._copies.discard)
        return _named(response, version)

    async def _shadow(
        self,
        endpoint: Endpoint,
        shadow: Shadow,
        request: Request,
        live: tuple[int, bytes],
        live_s: float,
    ) -> None:
        """One copy through the shadow's own route (its slots, queue and deadlines, so
        it never takes a live version's slot nor waits past its route's limits)."""
        started = time.monotonic()
        answer: tuple[int, bytes] | None = None
        try:
            route = self.table.routes.get(shadow.route)
            if route is not None:
                if route.forward is not None:
                    response = await self._forward(route, request, trusted=True)
                else:
                    response = await self._score(route, request, trusted=True)
                answer = (response.status, response.body)
        except Exception:
            log.exception(
                "endpoint %s: the copy to shadow %s failed", endpoint.name, shadow.version
            )
        finally:
            endpoint.in_flight.count -= 1  # kept across table updates, as the counters are
        seconds = (live_s, time.monotonic() - started)
        settle(shadow.counters, live, answer, seconds, endpoint.tolerance)

    def _act(
        self, route: Route, action: str, request: Request, path: str, admitted: bool = False
    ) -> Coroutine[Any, Any, Response]:
        """The work for ``action`` on ``route``, not yet awaited: the hot path awaits the
        scoring coroutine itself, with no frame in between.  ``admitted``: ``admission``
        has checked the credential for this very route."""
        if action == "score":
            if route.forward is not None:
                return self._forward(route, request, admitted)
            return self._score(route, request, admitted)
        if action == "swagger.json" and request.method == "GET":
            return self._swagger(route, request)
        return _answer(error(404, "not_found", f"no route {path}"))

    async def _score(
        self, route: Route, request: Request, trusted: bool = False, target: str = SCORE
    ) -> Response:
        if route.tracing:
            tracer = tracing.tracer("modelport-router")
            if tracer is not None:
                return await self._score_traced(tracer, route, request, trusted, target)
        return await self._score_untraced(route, request, trusted, target)

    async def score_at(self, route: Route, request: Request, target: str) -> Response:
        """A request the OIP front has authenticated, to ``target`` on a replica: the
        slots, queue, deadline and counters of scoring (see router/oip.py)."""
        if route.forward is not None:
            return await self._forward(route, request, True, target)
        return await self._score(route, request, True, target)

    async def _score_traced(
        self, tracer: Any, route: Route, request: Request, trusted: bool, target: str = SCORE
    ) -> Response:
        """A span around the request, continuing the client's trace; the replica gets
        this span's ``traceparent`` in place of the client's."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        context = tracing.extract(request.headers)
        name = f"{request.method} score {route.audience or route.name}"
        with tracer.start_as_current_span(name, context=context, kind=SpanKind.SERVER) as span:
            span.set_attribute("modelport.route", route.name)
            kept = [h for h in request.headers if h[0] not in TRACE_HEADERS]
            request.headers = kept + tracing.inject()
            response = await self._score_untraced(route, request, trusted, target)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response

    async def _score_untraced(
        self, route: Route, request: Request, trusted: bool = False, target: str = SCORE
    ) -> Response:
        started = time.monotonic()
        book = self.requests
        entry = None if book is None else Entry(route.name, request.headers, len(request.body))
        response = await self._scored(route, request, started, trusted, entry, target)
        seconds = time.monotonic() - started
        route.lane.stats.record(response.status, seconds)
        if book is not None and entry is not None:
            book.add(entry, response, seconds)
        if route.capture is not None and response.status != 401:  # traffic, not probes
            taken = route.capture.offer(
                request.body, response.status, response.body, response.headers, seconds
            )
            if taken is not None:
                route.lane.stats.capture["taken" if taken else "dropped"] += 1
        return response

    async def score_forwarded(self, name: str, request: Request, target: str = SCORE) -> Response:
        """A request a sibling worker has already authenticated (via the admin port)."""
        route = self.table.routes.get(name)
        if route is None or route.forward is not None:
            return error(404, "not_found", f"service {name!r} not found on this worker")
        return await self._score(route, request, trusted=True, target=target)

    async def _forward(
        self, route: Route, request: Request, trusted: bool = False, target: str = SCORE
    ) -> Response:
        """This worker holds none of the service's slots: the one that does serves it."""
        refused = _refusal(route, request, trusted)
        if refused is not None:
            return refused
        assert route.forward is not None
        host, port = route.forward
        data = _encode_request(request, f"/forward/{route.name}{target}", self._forward_auth)
        route.lane.stats.forwarded += 1
        try:
            # The sibling answers 504 at the service's timeout; this one is a backstop.
            async with asyncio.timeout(route.timeout_s + 5):
                upstream = await self.pool.request(host, port, data)
        except (TimeoutError, ConnectFailed, UpstreamClosed) as exc:
            return error(502, "bad_gateway", f"the router worker holding the slots failed: {exc}")
        headers = [(k, v) for k, v in upstream.headers if k not in HOP_BY_HOP]
        return Response(upstream.status, upstream.body, headers)

    async def _scored(
        self,
        route: Route,
        request: Request,
        started: float,
        trusted: bool = False,
        entry: Entry | None = None,
        target: str = SCORE,
    ) -> Response:
        refused = _refusal(route, request, trusted)
        if refused is not None:
            return refused
        data = _encode_request(request, target, route.replica_header)
        try:
            return await self._placed(route, request, data, started, entry, last=False)
        except _Unstarted:
            # Pipelined on a connection the replica closed before starting it (it was
            # draining): never run, so it goes through the queue once more.
            route = self.table.routes.get(route.name, route)
            return await self._placed(route, request, data, started, entry, last=True)

    async def _placed(
        self,
        route: Route,
        request: Request,
        data: bytes,
        started: float,
        entry: Entry | None,
        last: bool,
    ) -> Response:
        """A slot (now or from the queue), then the exchange on it."""
        backend = route.try_acquire()
        begun: Future[UpstreamResponse] | None = None  # an exchange dispatch already started
        slot: Slot | None = None
        if backend is None:
            try:
                waiter = await self._wait(route, request, data)
                backend, begun, slot = waiter.future.result(), waiter.upstream, waiter.slot
            except QueueFull as exc:
                route.lane.stats.queue_full += 1
                return error(
                    503,
                    "queue_full",
                    f"service {route.name!r} is at capacity and its queue is full",
                    RETRY_AFTER,
                    waitedMs=0,
                    queued=exc.queued,
                )
            except WaitTimeout as exc:
                route.lane.stats.queue_timeouts += 1
                if entry is not None:
                    entry.waited_s = exc.waited_s
                return _queue_timeout(self.table.routes.get(route.name, route), exc)
            except LookupError:
                return error(404, "not_found", f"service {route.name!r} was removed")
            except asyncio.CancelledError:
                return error(499, "client_closed", "the client left while queued")
        waited = time.monotonic() - started
        route.lane.stats.queue_wait.observe(waited)
        if entry is not None:
            entry.waited_s, entry.replica = waited, (backend.host, backend.port)
        # If our client leaves now, the exchange still runs to the replica's answer
        # and frees the slot then: the replica never has more than its cap at once.
        return await self._exchange(route.name, backend, request, data, begun, slot, last)

    async def _wait(self, route: Route, request: Request, data: bytes) -> Waiter:
        waiter = route.enqueue(asyncio.get_running_loop())
        waiter.data = data

        def leave() -> None:
            # The client disconnected while queued; the route may have been replaced
            # by a table update, so abandon on the one now in force (same lane).  A
            # slot already handed over is used and freed by this handler as usual.
            if not waiter.future.done():
                self.table.routes.get(route.name, route).abandon(waiter)

        request.on_disconnect = leave
        if route.pipeline_limit_s:  # a fast replica may take it behind a running one now
            self._dispatch(route)
        try:
            await waiter.future
        finally:
            request.on_disconnect = None
        return waiter

    def _dispatch(self, route: Route) -> None:
        """Give free slots to the longest-waiting requests, starting each at once.

        Called when a slot frees, often inside the replica's response callback: the
        next request goes out on the connection that just became idle, before any
        task runs, so a one-at-a-time replica is not left waiting for the router.
        """
        if not route.lane.waiters:
            return
        name, pool, stats = route.name, self.pool, route.lane.stats
        # A connection whose request began before this is slow already: none behind it.
        after = time.monotonic() - route.pipeline_limit_s

        def pipe(backend: Backend) -> bool:
            return pool.pipelinable(backend.host, backend.port, after) is not None

        def start(backend: Backend, waiter: Waiter) -> None:
            slot = waiter.slot = Slot(self, name, backend)
            if waiter.data is None:
                return
            if backend.in_flight > backend.cap:  # behind a running one, on its connection
                conn = pool.pipelinable(backend.host, backend.port, after)
                assert conn is not None  # pipe() said so, and nothing ran since
                waiter.upstream = conn.begin(waiter.data, slot.answered)
                stats.pipelined += 1
            else:
                waiter.upstream = pool.start_now(
                    backend.host, backend.port, waiter.data, slot.answered
                )

        route.dispatch(start, pipe)

    async def _exchange(
        self,
        name: str,
        backend: Backend,
        request: Request,
        data: bytes,
        begun: Future[UpstreamResponse] | None = None,
        slot: Slot | None = None,
        last: bool = True,
    ) -> Response:
        """``last``: else a pipelined request the replica never started raises
        :class:`_Unstarted`, to be placed again."""
        route = self.table.routes.get(name)
        timeout_s = route.timeout_s if route is not None else 60.0
        slot = slot or Slot(self, name, backend)
        sent = time.time()
        try:
            async with asyncio.timeout(timeout_s):  # no extra task, unlike wait_for
                upstream = await self._send(slot, data, begun)
        except TimeoutError:
            return error(504, "timeout", f"the replica did not answer within {timeout_s:g} s")
        except ConnectFailed:
            return error(502, "bad_gateway", "no replica of the service could be reached")
        except PipelineBroken as exc:
            if not exc.timed_out and not last:
                raise _Unstarted from exc
            return self._unstarted(name, exc)
        except UpstreamClosed:
            failed = slot.backend
        else:
            return _response(upstream)
        finally:
            slot.release()  # a no-op when the answer already freed it
        return error(502, "bad_gateway", await _replica_failure(name, failed, sent))

    async def _send(
        self, slot: Slot, data: bytes, begun: Future[UpstreamResponse] | None
    ) -> UpstreamResponse:
        """One try; a connection that never opened is retried once on another free replica."""
        if begun is not None:
            return await begun
        backend = slot.backend
        try:
            future = await self.pool.start(backend.host, backend.port, data, slot.answered)
        except ConnectFailed:
            slot.release()
            route = self.table.routes.get(slot.name)
            retry = route.try_acquire(exclude=backend) if route is not None else None
            if retry is None:
                raise
            log.info(
                "replica %s:%s unreachable; retrying on %s:%s",
                backend.host,
                backend.port,
                retry.host,
                retry.port,
            )
            slot.rebind(retry)
            future = await self.pool.start(retry.host, retry.port, data, slot.answered)
        return await future

    def _unstarted(self, name: str, exc: PipelineBroken) -> Response:
        """A request pipelined behind one whose connection ended: the replica never
        started it.  Counted; 504 when the one ahead timed out, else 503 (retry)."""
        route = self.table.routes.get(name)
        if route is not None:
            route.lane.stats.pipeline_failed += 1
        if exc.timed_out:
            return error(504, "timeout", f"the replica did not answer: {exc}")
        return error(503, "replica_closed", f"not served: {exc}", RETRY_AFTER)

    def _answered(self, name: str, backend: Backend, service_s: float) -> None:
        route = self.table.routes.get(name)
        if route is not None:
            backend.answered(service_s, route.pipeline_limit_s)
        self._release(name, backend)

    def _release(self, name: str, backend: Backend) -> None:
        route = self.table.routes.get(name)
        if route is None:
            backend.in_flight -= 1
            return
        release(route, backend)
        self._dispatch(route)

    def _swagger(self, route: Route, request: Request) -> Coroutine[Any, Any, Response]:
        return self.fetch(route, request, "/swagger.json")

    async def fetch(self, route: Route, request: Request, target: str) -> Response:
        """Metadata (swagger.json, OIP model metadata) takes no scoring slot: any replica
        answers it; a worker holding none of the slots asks the one that does."""
        if route.forward is not None and not route.backends:
            return await self._forward(route, request, True, target)
        if not route.backends:
            return error(
                503, "no_replica", f"service {route.name!r} has no ready replica", RETRY_AFTER
            )
        backend = route.backends[0]
        try:
            upstream = await asyncio.wait_for(
                self.pool.request(
                    backend.host,
                    backend.port,
                    _encode_request(request, target, route.replica_header),
                ),
                10,
            )
        except (TimeoutError, ConnectFailed, UpstreamClosed) as exc:
            return error(502, "bad_gateway", f"{target} could not be fetched: {exc}")
        return _response(upstream)


class _Unstarted(Exception):
    """A pipelined request its replica never started: it may be placed again."""


class Slot:
    """One replica slot held by one request; released exactly once, by whoever ends it."""

    __slots__ = ("backend", "held", "name", "proxy")

    def __init__(self, proxy: Proxy, name: str, backend: Backend) -> None:
        self.proxy = proxy
        self.name = name
        self.backend = backend
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.proxy._release(self.name, self.backend)

    def answered(self, service_s: float) -> None:
        """The replica answered: its service time counts before the slot frees."""
        if self.held:
            self.held = False
            self.proxy._answered(self.name, self.backend, service_s)

    def rebind(self, backend: Backend) -> None:
        """Now holding a slot of another replica (taken by try_acquire)."""
        self.backend = backend
        self.held = True


def admission(table: RouteTable, method: str, path: str, headers: Headers) -> Response | None:
    """What a request gets before its body is read, or None to read it and serve it.

    The same answers as the handler would give (404, 405, 401, 503 while starting),
    and ``HEALTHY`` for ``GET /healthz``; swagger.json stays open, as in v1.  For an
    endpoint a credential that one of its versions takes is let through: the
    version the handler picks checks it again."""
    if not path.startswith(PREFIX):
        if path == HEALTH_PATH and method == "GET":
            return HEALTHY
        if path.startswith(OIP_PREFIX):
            return oip.admission(table, method, path, headers)
        return error(404, "not_found", f"no route {path}")
    if table.revision == 0:
        return STARTING
    name, _, action = path[len(PREFIX) :].partition("/")
    if action != "score":
        if action == "swagger.json" and method == "GET":
            # Open to all: so it must not read an upload for anyone.
            return NO_BODY if _declares_body(headers) else None
        return error(404, "not_found", f"no route {path}")
    if method not in SCORING_METHODS:
        return _method_refusal(method)
    route = table.public.get(name)
    if route is not None:
        return _auth_refusal(route, _authorization(headers)) if route.auth else None
    endpoint = table.endpoints.get(name)
    if endpoint is None:
        return error(404, "not_found", f"service {name!r} not found")
    versions = [table.routes[r] for r in endpoint.routes.values() if r in table.routes]
    if not versions or not all(r.auth for r in versions):
        return None
    header = _authorization(headers)
    if any(r.auth_refusal(header) is None for r in versions):
        return None
    return _auth_refusal(versions[0], header)


def _refusal(route: Route, request: Request, trusted: bool) -> Response | None:
    """405 for a method scoring does not take, 401 for a missing or wrong key; else None."""
    if request.method not in SCORING_METHODS:
        return _method_refusal(request.method)
    if trusted or not route.auth:
        return None
    return _auth_refusal(route, _authorization(request.headers))


def _declares_body(headers: Headers) -> bool:
    return any(
        (k == b"content-length" and v.strip() != b"0") or k == b"transfer-encoding"
        for k, v in headers
    )


def _authorization(headers: Headers) -> bytes | None:
    return next((v for k, v in headers if k == b"authorization"), None)


def _method_refusal(method: str) -> Response:
    return error(405, "method_not_allowed", f"method {method} is not allowed")


def _auth_refusal(route: Route, header: bytes | None) -> Response | None:
    """None when ``header`` admits to ``route`` (its key, or a token for it); else the 401.

    RFC 6750's ``invalid_token`` for token-auth routes; the reason never echoes the
    credential."""
    reason = route.auth_refusal(header)
    if reason is None:
        return None
    if route.token_auth:
        challenge = f'Bearer realm="modelport", error="invalid_token", error_description="{reason}"'
        return error(401, "invalid_token", reason, (b"www-authenticate", challenge.encode()))
    if reason != auth.TOKEN_FOR_KEY:
        return UNAUTHORIZED  # missing or wrong: as before token auth existed
    return error(401, "unauthorized", reason, (b"www-authenticate", b'Bearer realm="modelport"'))


def _queue_timeout(route: Route, exc: WaitTimeout) -> Response:
    waited = round(exc.waited_s * 1000)
    if route.starting:
        text = f"service {route.name!r} is starting: none of its replicas is ready yet"
        code = "service_starting"
    else:
        text, code = f"no replica of {route.name!r} was free within {waited} ms", "queue_timeout"
    return error(503, code, text, RETRY_AFTER, waitedMs=waited, queued=exc.queued)


async def _replica_failure(name: str, backend: Backend, since: float) -> str:
    """Why the replica stopped answering, from its supervisor's exit record if one comes."""
    hint = f"see `modelport service logs -n {name}`"
    if backend.exit_file is not None:
        deadline = time.monotonic() + EXIT_WAIT_S
        while True:
            record = _exit_record(backend.exit_file, since)
            if record is not None:
                return f"the replica {record} while scoring; {hint}"
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    return f"the replica closed the connection while scoring; {hint}"


def _exit_record(path: str, since: float) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or float(record.get("time", 0)) < since - 1:
        return None
    if record.get("signal"):
        text = f"was killed by signal {record['signal']}"
        return text + " for going over its memory limit" if record.get("oomKilled") else text
    return f"exited with code {record.get('code')}"


def _encode_request(request: Request, target: str, extra: bytes = b"") -> bytes:
    """The request as the replica gets it (any replica: encoded once, even while queued)."""
    query = f"?{request.query}" if request.query else ""
    parts = [f"{request.method} {target}{query} HTTP/1.1\r\n".encode(), b"host: replica\r\n"]
    if extra:
        parts.append(extra)
    for name, value in request.headers:
        if name not in HOP_BY_HOP:
            parts.append(name + b": " + value + b"\r\n")
    parts.append(b"content-length: " + str(len(request.body)).encode() + b"\r\n\r\n")
    parts.append(request.body)
    return b"".join(parts)


def _named(response: Response, version: str) -> Response:
    """The answer with the version that served it; a new one, since the prebuilt answers
    (401, 503) are shared by every request."""
    return Response(
        response.status, response.body, [*response.headers, (VERSION_HEADER, version.encode())]
    )


def _response(upstream: UpstreamResponse) -> Response:
    headers = [(k, v) for k, v in upstream.headers if k not in HOP_BY_HOP]
    # As the v1 front end did: a scoring script's crash (500) reaches clients as 502.
    status = 502 if upstream.status == 500 else upstream.status
    return Response(status, upstream.body, headers)


async def _answer(response: Response) -> Response:
    return response
