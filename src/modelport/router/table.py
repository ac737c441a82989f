"""The route table as the router holds it: plain, prepared once per update."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Backend:
    """One replica address and the requests the router has in flight to it."""

    host: str
    port: int
    in_flight: int = 0


@dataclass
class Route:
    name: str
    auth: bool
    key_digests: tuple[bytes, ...]
    backends: list[Backend]
    timeout_s: float
    turn: int = 0

    def authorised(self, header: bytes | None) -> bool:
        """Constant-time check of ``Bearer <key>`` against the key digests."""
        if not self.auth:
            return True
        if header is None or not header.startswith(b"Bearer "):
            return False
        digest = hashlib.sha256(header[7:].strip()).digest()
        ok = False
        for expected in self.key_digests:
            ok |= hmac.compare_digest(digest, expected)
        return ok

    def pick(self, exclude: Backend | None = None) -> Backend | None:
        """The ready replica with the fewest requests in flight; ties take turns."""
        backends = self.backends
        count = len(backends)
        best: Backend | None = None
        start = self.turn
        for i in range(count):
            b = backends[(start + i) % count]
            if b is not exclude and (best is None or b.in_flight < best.in_flight):
                best = b
        self.turn = (start + 1) % count if count else 0
        return best


@dataclass
class RouteTable:
    revision: int = 0
    routes: dict[str, Route] = field(default_factory=dict)


def build_table(doc: dict[str, Any], previous: RouteTable) -> RouteTable:
    """Parse a pushed table; replicas that stay keep their in-flight counts."""
    known = {(b.host, b.port): b for r in previous.routes.values() for b in r.backends}
    routes = {}
    for name, svc in doc.get("services", {}).items():
        backends = [known.get((h, int(p))) or Backend(h, int(p)) for h, p in svc["replicas"]]
        routes[name] = Route(
            name=name,
            auth=bool(svc.get("auth", True)),
            key_digests=tuple(bytes.fromhex(d) for d in svc.get("keyDigests", [])),
            backends=backends,
            timeout_s=float(svc.get("scoringTimeoutMs", 60000)) / 1000,
        )
    return RouteTable(int(doc.get("revision", 0)), routes)
