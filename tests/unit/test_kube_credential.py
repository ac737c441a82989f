"""The staging credential: scoped to one generation, expiring, signed by the workspace."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from modelport.compute.kubernetes import credential
from modelport.compute.kubernetes.credential import Scope
from modelport.errors import UnauthorizedError
from tests.conftest import run_concurrently

KEY = bytes(range(32))
SCOPE = Scope("iris", 4, "f" * 64, ("model:1", "other:3"))
NOW = 1_900_000_000.0


def test_a_credential_carries_its_scope() -> None:
    minted = credential.mint(KEY, SCOPE, now=NOW, ttl_s=600)
    grant = credential.verify(KEY, minted.token, now=NOW + 599)
    assert grant.scope == SCOPE
    assert (grant.issued_at, grant.expires_at) == (int(NOW), int(NOW) + 600)
    assert (minted.expires_at, minted.refresh_at) == (int(NOW) + 600, int(NOW) + 300)


def test_an_expired_credential_says_when_it_expired() -> None:
    minted = credential.mint(KEY, SCOPE, now=NOW, ttl_s=600)
    with pytest.raises(UnauthorizedError) as info:
        credential.verify(KEY, minted.token, now=NOW + 600)
    assert info.value.message == (
        "the staging credential of service iris generation 4 expired at 2030-03-17T17:56:40+00:00"
    )
    assert info.value.http_status == 401


@pytest.mark.parametrize(
    "token",
    [
        "t" * 43,  # an admin token
        "",
        credential.mint(bytes(32), SCOPE, now=NOW).token,  # another workspace's key
        jwt.encode({"sub": "iris/4", "iat": 1, "exp": 2**40}, KEY, algorithm="HS256"),  # no aud
        jwt.encode(
            {"aud": "modelport-scoring", "sub": "x", "iat": 1, "exp": 2**40}, KEY, algorithm="HS256"
        ),
        jwt.encode({"aud": credential.AUDIENCE, "sub": "x", "iat": 1}, KEY, algorithm="HS256"),
        jwt.encode(
            {"aud": credential.AUDIENCE, "sub": "x", "iat": 1, "exp": 2**40, "svc": "x"},
            KEY,
            algorithm="HS256",
        ),  # claims missing
    ],
)
def test_anything_else_is_refused(token: str) -> None:
    with pytest.raises(UnauthorizedError) as info:
        credential.verify(KEY, token, now=NOW)
    assert info.value.message.startswith("not a valid staging credential")


def test_a_changed_claim_breaks_the_signature() -> None:
    header, _payload, signature = credential.mint(KEY, SCOPE, now=NOW).token.split(".")
    other = credential.mint(KEY, Scope("iris", 5, SCOPE.snapshot, SCOPE.models), now=NOW)
    forged = ".".join((header, other.token.split(".")[1], signature))
    with pytest.raises(UnauthorizedError):
        credential.verify(KEY, forged, now=NOW)


def test_unsigned_tokens_are_refused() -> None:
    claims = {
        "aud": credential.AUDIENCE,
        "sub": "iris/4",
        "svc": "iris",
        "gen": 4,
        "snap": "s",
        "models": [],
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(UnauthorizedError):
        credential.verify(KEY, token, now=NOW)


def test_the_signing_key_is_private_and_made_once(tmp_path: Path) -> None:
    keys = run_concurrently(lambda: credential.signing_key(tmp_path), 8)
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    path = tmp_path / credential.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credential.signing_key(tmp_path) == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == [credential.KEY_FILE]
