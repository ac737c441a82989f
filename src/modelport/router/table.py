"""The route table as the router holds it, and the per-replica slot accounting.

Each replica takes at most its ``cap`` requests at once (``maxConcurrent``, or this
worker's share of it when several router workers split it).  A request that
finds no free slot waits in its service's FIFO (its :class:`Lane`) until a slot
frees, its deadline passes, or its client goes away.  Slot decisions are plain
synchronous code; the proxy does the I/O around them.  A lane outlives route
table updates, so waiters and counters survive a scale-up or a key change.

While requests queue, a fast replica may be handed up to ``cap`` more, sent behind
the ones it executes (``pipelining.py``): ``in_flight`` counts both, and what is
over ``cap`` still counts as queued for the autoscaler.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelport.router import pipelining
from modelport.router.auth import TokenKeys, Verifier, key_refusal
from modelport.router.capture import Capture
from modelport.router.endpoint import Endpoint, build_endpoints
from modelport.router.stats import LaneStats

# Sent to every replica of a route that has a replica key (local replicas refuse
# requests without it); the runtime's modelport.runtime.gate.HEADER.
REPLICA_KEY_HEADER = b"x-modelport-replica-key"


class QueueFull(Exception):
    def __init__(self, queued: int) -> None:
        self.queued = queued


class WaitTimeout(Exception):
    def __init__(self, waited_s: float, queued: int) -> None:
        self.waited_s = waited_s
        self.queued = queued


@dataclass(eq=False)
class Backend:
    """One replica address, this worker's slots on it, and its requests in flight."""

    host: str
    port: int
    cap: int = 1
    in_flight: int = 0
    busy_since: float = 0.0
    exit_file: str | None = None  # where the replica's supervisor records why it exited
    unix: str | None = None  # its Unix socket, on this machine: one cheaper hop than TCP
    # Its last service times and whether they allow pipelining (``pipelining.py``).
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=pipelining.WINDOW))
    fast: bool = False

    def answered(self, service_s: float, limit_s: float) -> None:
        """One answer's service time: a slow one ends pipelining here at once."""
        self.recent.append(service_s)
        self.fast = pipelining.allows(self.recent, limit_s)

    @property
    def executing(self) -> int:
        return min(self.in_flight, self.cap)


@dataclass(eq=False)
class Waiter:
    future: asyncio.Future[Backend]
    enqueued: float
    timer: asyncio.TimerHandle | None = None
    data: bytes | None = None  # the request, ready to send when a slot frees
    upstream: Any = None  # the exchange dispatch already started for it, if any
    slot: Any = None  # the slot dispatch took for it


@dataclass(eq=False)
class Lane:
    """A service's queue and counters, kept across route table updates."""

    waiters: deque[Waiter] = field(default_factory=deque)
    stats: LaneStats = field(default_factory=LaneStats)


@dataclass
class Route:
    name: str
    auth: bool
    key_digests: tuple[bytes, ...]
    backends: list[Backend]
    timeout_s: float
    max_wait_s: float = 0.5
    max_queue: int = 100
    lane: Lane = field(default_factory=Lane)
    turn: int = 0
    forward: tuple[str, int] | None = None  # a sibling worker that holds the slots
    starting: bool = False  # no replica was ready yet: a queue timeout says so
    backend: str | None = None  # which generation's replicas (on a cluster), echoed in stats
    hidden: bool = False  # an endpoint's version: reached only through its endpoint
    token_auth: bool = False  # tokens (JWT) instead of keys
    audience: str = ""  # what its tokens name as ``aud``: the service's or endpoint's name
    verifier: Verifier | None = None  # the table's token keys and verified-token cache
    capture: Capture | None = None  # bodies written for model data (router/capture.py)
    tracing: bool = False  # a span per request (enable_app_insights; ``tracing.py``)
    replica_header: bytes = b""  # the replica key's header line, made once per table
    pipeline_limit_s: float = 0.0  # replicas answering under this may be pipelined; 0: never

    def auth_refusal(self, header: bytes | None) -> str | None:
        """Why ``header`` does not admit to this route (see ``router/auth.py``), or None."""
        if not self.auth:
            return None
        if self.token_auth:
            verifier = self.verifier or Verifier(None)
            return verifier.token_refusal(header, self.audience or self.name)
        return key_refusal(header, self.key_digests)

    def authorised(self, header: bytes | None) -> bool:
        return self.auth_refusal(header) is None

    def pick(
        self, exclude: Backend | None = None, pipe: Callable[[Backend], bool] | None = None
    ) -> Backend | None:
        """The replica with a free slot and the fewest requests in flight; ties take turns.

        With ``pipe`` (requests are queued), a fast replica at its cap may take one
        more per slot where ``pipe`` says a connection can carry it."""
        backends = self.backends
        count = len(backends)
        best: Backend | None = None
        start = self.turn
        for i in range(count):
            b = backends[(start + i) % count]
            if b is exclude:
                continue
            if b.in_flight >= b.cap and (
                pipe is None or not b.fast or b.in_flight >= 2 * b.cap or not pipe(b)
            ):
                continue
            if best is None or b.in_flight < best.in_flight:
                best = b
        self.turn = (start + 1) % count if count else 0
        return best

    def try_acquire(self, exclude: Backend | None = None) -> Backend | None:
        """A slot now, if one is free and nobody waits before us."""
        if self.lane.waiters and exclude is None:
            return None
        backend = self.pick(exclude)
        if backend is not None:
            take(self, backend)
        return backend

    def enqueue(self, loop: asyncio.AbstractEventLoop) -> Waiter:
        waiters = self.lane.waiters
        if len(waiters) >= self.max_queue:
            raise QueueFull(len(waiters))
        waiter = Waiter(loop.create_future(), time.monotonic())
        waiter.timer = loop.call_later(self.max_wait_s, self._expire, waiter)
        waiters.append(waiter)
        return waiter

    def _expire(self, waiter: Waiter) -> None:
        """The deadline passed while waiting: answer now, not when a slot frees."""
        if waiter.future.done():
            return
        waited = time.monotonic() - waiter.enqueued
        early = self.max_wait_s - waited
        if early > 0:  # timers run on the loop's clock, read once per turn: a hair early
            waiter.timer = asyncio.get_running_loop().call_later(early, self._expire, waiter)
            return
        self.lane.waiters.remove(waiter)
        waiter.future.set_exception(WaitTimeout(waited, len(self.lane.waiters)))

    def abandon(self, waiter: Waiter) -> None:
        """The client went away while queued: leave the queue without using a slot.

        Cancelling the waiting task cancels the future too, so whether a slot was
        handed over is told by the queue: a waiter no longer in it was given one.
        """
        if waiter.timer is not None:
            waiter.timer.cancel()
        try:
            self.lane.waiters.remove(waiter)
        except ValueError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                release(self, future.result())
                self.dispatch()
        else:
            waiter.future.cancel()

    def dispatch(
        self,
        start: Callable[[Backend, Waiter], None] | None = None,
        pipe: Callable[[Backend], bool] | None = None,
    ) -> None:
        """Hand free slots to the longest-waiting requests; ``start`` may begin each at once.

        ``pipe`` (see ``pick``) lets fast replicas take requests behind running ones."""
        waiters = self.lane.waiters
        while waiters:
            backend = self.pick(pipe=pipe if self.pipeline_limit_s else None)
            if backend is None:
                return
            waiter = waiters.popleft()
            if waiter.timer is not None:
                waiter.timer.cancel()
            if waiter.future.done():  # cancelled, and about to be abandoned
                continue
            take(self, backend)
            if start is not None:
                start(backend, waiter)
            waiter.future.set_result(backend)

    def fail_waiters(self, exc: Exception) -> None:
        while self.lane.waiters:
            waiter = self.lane.waiters.popleft()
            if waiter.timer is not None:
                waiter.timer.cancel()
            if not waiter.future.done():
                waiter.future.set_exception(exc)


def take(route: Route, backend: Backend) -> None:
    if backend.in_flight == 0:
        backend.busy_since = time.monotonic()
    backend.in_flight += 1


def release(route: Route, backend: Backend) -> None:
    """Free a slot; the caller dispatches on the route now in the table."""
    backend.in_flight -= 1
    if backend.in_flight == 0:
        route.lane.stats.busy_seconds += time.monotonic() - backend.busy_since


@dataclass
class RouteTable:
    revision: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    tokens: dict[str, Any] | None = None  # the document ``verifier`` was built from
    verifier: Verifier = field(default_factory=lambda: Verifier(None))
    # What clients may name: every route but the hidden ones, sorted out once per table.
    public: dict[str, Route] = field(init=False)

    def __post_init__(self) -> None:
        self.public = {name: r for name, r in self.routes.items() if not r.hidden}


def replica_header(key: object) -> bytes:
    """The header line that admits to a route's replicas; none for a key that is not
    plain printable ASCII (it would break the request)."""
    if not isinstance(key, str) or not key or not key.isascii() or not key.isprintable():
        return b""
    return REPLICA_KEY_HEADER + b": " + key.encode() + b"\r\n"


def build_table(doc: dict[str, Any], previous: RouteTable) -> RouteTable:
    """Parse a pushed table; replicas and lanes that stay keep their state."""
    known = {(b.host, b.port): b for r in previous.routes.values() for b in r.backends}
    tokens = doc.get("tokens")
    if tokens == previous.tokens:
        verifier = previous.verifier  # same keys: verified tokens stay verified
    else:  # a key retired or added: nothing verified under the old set is trusted
        verifier = Verifier(TokenKeys.from_document(tokens) if tokens else None)
    routes = {}
    for name, svc in doc.get("services", {}).items():
        cap = int(svc.get("maxConcurrent", 1))
        exit_files = svc.get("exitFiles", {})
        unix_sockets = svc.get("unixSockets", {})
        backends = []
        for host, port, *share in svc["replicas"]:
            # With several workers, each gets its share of a replica's slots.
            backend = known.get((host, int(port))) or Backend(host, int(port))
            backend.cap = int(share[0]) if share else cap
            backend.exit_file = exit_files.get(str(port))
            backend.unix = unix_sockets.get(str(port))
            backends.append(backend)
        old = previous.routes.get(name)
        routes[name] = Route(
            name=name,
            auth=bool(svc.get("auth", True)),
            key_digests=tuple(bytes.fromhex(d) for d in svc.get("keyDigests", [])),
            backends=backends,
            timeout_s=float(svc.get("scoringTimeoutMs", 60000)) / 1000,
            max_wait_s=float(svc.get("maxWaitMs", 500)) / 1000,
            max_queue=int(svc.get("maxQueue", 100)),
            lane=old.lane if old is not None else Lane(),
            turn=old.turn if old is not None else 0,
            forward=(svc["forwardTo"][0], int(svc["forwardTo"][1])) if "forwardTo" in svc else None,
            starting=bool(svc.get("starting", False)),
            backend=svc.get("backend"),
            hidden=bool(svc.get("hidden", False)),
            token_auth=bool(svc.get("tokenAuth", False)),
            audience=str(svc.get("audience", name)),
            verifier=verifier,
            capture=Capture.from_entry(svc["capture"]) if "capture" in svc else None,
            tracing=bool(svc.get("tracing", False)),
            replica_header=replica_header(svc.get("replicaKey")),
            pipeline_limit_s=pipelining.limit_s(
                float(svc.get("maxWaitMs", 500)) / 1000, bool(svc.get("pipelining", True))
            ),
        )
    return RouteTable(
        int(doc.get("revision", 0)),
        routes,
        build_endpoints(doc, previous.endpoints),
        tokens,
        verifier,
    )
