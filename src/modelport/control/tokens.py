"""The control plane's token service: mint for a caller, rotate keys, publish public keys.

The router gets ``{"issuer", "keys"}`` (public JWKs only) in every table; a retired
key stays there until its last token has expired, then :meth:`Tokens.prune` drops it
and the plane publishes again, so a replay of an old token is refused from then on.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from modelport.store.signing import AccessToken, SigningKey, jwks, mint, next_change
from modelport.store.tokens import TokenStore

ADMIN_SUBJECT = "admin"


class Tokens:
    def __init__(self, store: TokenStore, lifetime_s: int) -> None:
        self.store = store
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: list[SigningKey] | None = None

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            self._issuer = self.store.issuer()
        return self._issuer

    def keys(self) -> list[SigningKey]:
        with self._lock:
            if self._keys is None:
                self._keys = self.store.keys()
            return self._keys

    def mint(self, audience: str, subject: str) -> AccessToken:
        return mint(self.keys()[0], self.issuer, audience, subject, self.lifetime_s)

    def rotate(self) -> list[SigningKey]:
        keys = self.store.rotate(self.lifetime_s)
        with self._lock:
            self._keys = keys
        return keys

    def prune(self) -> list[str]:
        """Forget keys whose tokens have all expired; their kids."""
        gone = self.store.prune()
        if gone:
            with self._lock:
                self._keys = None
        return gone

    def next_prune(self) -> datetime | None:
        return next_change(self.keys(), datetime.now(UTC))

    def table(self) -> dict[str, Any]:
        """The route table's ``tokens``: what routers verify with (no private key)."""
        return {"issuer": self.issuer, **jwks(self.keys(), datetime.now(UTC))}

    def key_views(self) -> list[dict[str, Any]]:
        return [
            {
                "kid": k.kid,
                "signing": k.signing,
                "createdTime": k.created_time.isoformat(),
                "retiredTime": k.retired_time.isoformat() if k.retired_time else None,
                "verifyUntil": k.verify_until.isoformat() if k.verify_until else None,
            }
            for k in self.keys()
        ]
