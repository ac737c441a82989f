"""Scoring tokens: JWTs the control plane signs (Ed25519) for one service or endpoint.

Pure decisions, no I/O: what a token says, when it should be refreshed (after half
its lifetime, see ``spec/tokens.py`` for the default and why), and which signing keys
still have to be published.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from modelport.spec.tokens import DEFAULT_LIFETIME_S

ALGORITHM = "EdDSA"
TOKEN_TYPE = "Bearer"
REFRESH_FRACTION = 0.5  # refreshAfter: half the lifetime


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    refresh_after: int  # epoch seconds
    expiry_on: int  # epoch seconds

    def to_dict(self) -> dict[str, Any]:
        """The v1 REST names (contract §4.2)."""
        return {
            "accessToken": self.access_token,
            "tokenType": TOKEN_TYPE,
            "refreshAfter": self.refresh_after,
            "expiryOn": self.expiry_on,
        }


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_time: datetime
    retired_time: datetime | None = None
    verify_until: datetime | None = None

    @property
    def signing(self) -> bool:
        return self.retired_time is None


def new_signing_key(now: datetime | None = None) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = secrets.token_urlsafe(12)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid=kid, alg=ALGORITHM, use="sig")
    return SigningKey(kid, pem, jwk, now or datetime.now(UTC))


def mint(
    key: SigningKey,
    issuer: str,
    audience: str,
    subject: str,
    ttl_s: int = DEFAULT_LIFETIME_S,
    now: float | None = None,
) -> AccessToken:
    issued = int(time.time() if now is None else now)
    expires = issued + ttl_s
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "jti": secrets.token_urlsafe(16),
    }
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)  # new_signing_key makes only these
    token = jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key.kid})
    return AccessToken(token, issued + int(ttl_s * REFRESH_FRACTION), expires)


def retire(key: SigningKey, now: datetime, ttl_s: int) -> SigningKey:
    """A key that signs no more and verifies until its last token has expired."""
    return SigningKey(
        key.kid,
        key.private_pem,
        key.public_jwk,
        key.created_time,
        retired_time=now,
        verify_until=now + timedelta(seconds=ttl_s),
    )


def spent(key: SigningKey, now: datetime) -> bool:
    """A retired key whose every token has expired: unpublished and deleted."""
    return key.verify_until is not None and now >= key.verify_until


def jwks(keys: list[SigningKey], now: datetime) -> dict[str, Any]:
    """The public keys tokens are checked with: the signing one and those still verifying."""
    return {"keys": [dict(k.public_jwk) for k in keys if not spent(k, now)]}


def next_change(keys: list[SigningKey], now: datetime) -> datetime | None:
    """When the published set next shrinks (a retired key becomes spent), if ever."""
    times = [k.verify_until for k in keys if k.verify_until is not None and k.verify_until > now]
    return min(times, default=None)
