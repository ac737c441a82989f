"""Who may score a route: a service key, or a token the control plane signed for it.

A token-auth route takes only a JWT signed (EdDSA) by one of the public keys in the
table's ``tokens.keys``, issued by the table's issuer, for the route's audience, and
within its validity; a key-auth route takes only its keys.  The router holds public
keys only, so it can check tokens but never mint one.

Verified tokens are cached by their SHA-256 until they expire (a bounded table that
lives as long as the published keys do), so a client that reuses its token costs one
hash and one dictionary lookup per request.  Refusal reasons name what is wrong with
the token, never the token or a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
CACHE_SIZE = 10_000
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti")

# Refusal reasons: short, fixed sentences (they reach the client and the access log).
KEY_FOR_TOKEN = "this service requires a token (token authentication); a key was sent"
TOKEN_FOR_KEY = "this service takes its keys (key authentication), not a token"
MISSING = "missing Authorization: Bearer credential"
WRONG_KEY = "missing or wrong key"
MALFORMED = "the token is malformed"
ALGORITHM_REFUSED = "the token's algorithm is not accepted (only EdDSA)"
UNKNOWN_KEY = "the token was signed by a key this router does not know (retired or foreign)"
BAD_SIGNATURE = "the token's signature does not verify"
EXPIRED = "the token has expired"
NOT_YET_VALID = "the token is not valid yet"
WRONG_AUDIENCE = "the token was issued for another service"
WRONG_ISSUER = "the token was issued by another workspace"
CLAIMS_MISSING = "the token lacks a required claim"
NO_KEYS = "token authentication is not configured on this router"


@dataclass(frozen=True)
class TokenKeys:
    """The table's ``tokens``: the issuer and its public verification keys by ``kid``."""

    issuer: str
    keys: dict[str, Any]  # kid -> a cryptography Ed25519 public key

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> TokenKeys:
        keys = {}
        for jwk in doc.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" in jwk:
                continue  # only public Ed25519 keys are ever used here
            keys[str(jwk["kid"])] = OKPAlgorithm.from_jwk(json.dumps(jwk))
        return cls(str(doc.get("issuer", "")), keys)


class Verifier:
    """Checks Bearer credentials against one table's keys; remembers verified tokens."""

    def __init__(self, keys: TokenKeys | None, cache_size: int = CACHE_SIZE) -> None:
        self.keys = keys
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # -> (aud, exp)
        self._cache_size = cache_size

    def token_refusal(
        self, header: bytes | None, audience: str, now: float | None = None
    ) -> str | None:
        """Why ``header`` does not admit to ``audience``'s token-auth route, or None."""
        credential = _credential(header)
        if credential is None:
            return MISSING
        now = time.time() if now is None else now
        digest = hashlib.sha256(credential).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached[0] == audience and now < cached[1]:
                return None
            if now >= cached[1]:
                del self._cache[digest]
                return EXPIRED
            return WRONG_AUDIENCE
        if credential.count(b".") != 2:
            return KEY_FOR_TOKEN if b"." not in credential else MALFORMED
        reason, expiry = self._verify(credential.decode("latin-1"), audience, now)
        if reason is None:
            self._remember(digest, audience, expiry)
        return reason

    def _verify(self, token: str, audience: str, now: float) -> tuple[str | None, float]:
        if self.keys is None or not self.keys.keys:
            return NO_KEYS, 0.0
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return MALFORMED, 0.0
        if header.get("alg") != ALGORITHM:
            return ALGORITHM_REFUSED, 0.0
        key = self.keys.keys.get(str(header.get("kid")))
        if key is None:
            return UNKNOWN_KEY, 0.0
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self.keys.issuer,
                # The times are checked below against one clock (``now``), not PyJWT's.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            expiry, start = float(claims["exp"]), float(claims["nbf"])
        except jwt.InvalidAudienceError:
            return WRONG_AUDIENCE, 0.0
        except jwt.InvalidIssuerError:
            return WRONG_ISSUER, 0.0
        except jwt.MissingRequiredClaimError:
            return CLAIMS_MISSING, 0.0
        except jwt.InvalidSignatureError:
            return BAD_SIGNATURE, 0.0
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return MALFORMED, 0.0
        if now >= expiry:
            return EXPIRED, 0.0
        if now < start:
            return NOT_YET_VALID, 0.0
        return None, expiry

    def _remember(self, digest: bytes, audience: str, expiry: float) -> None:
        cache = self._cache
        cache[digest] = (audience, expiry)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)  # the oldest: bounded, whatever clients send


def key_refusal(header: bytes | None, digests: tuple[bytes, ...]) -> str | None:
    """Why ``header`` is not one of a key-auth route's keys (constant time), or None."""
    credential = _credential(header)
    if credential is None:
        return MISSING
    digest = hashlib.sha256(credential).digest()
    ok = False
    for expected in digests:
        ok |= hmac.compare_digest(digest, expected)
    if ok:
        return None
    return TOKEN_FOR_KEY if credential.count(b".") == 2 else WRONG_KEY


def _credential(header: bytes | None) -> bytes | None:
    if header is None or not header.startswith(b"Bearer "):
        return None
    credential = header[7:].strip()
    return credential or None
