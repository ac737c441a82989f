"""Scoring tokens' pure parts: claims, the router's cache, rotation, v1's auth-mode rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from modelport.errors import ConfigError
from modelport.router.auth import (
    EXPIRED,
    WRONG_AUDIENCE,
    TokenKeys,
    Verifier,
)
from modelport.spec.deployment import auth_update
from modelport.spec.tokens import DEFAULT_LIFETIME_S, LIFETIME_VARIABLE, lifetime_s
from modelport.store.signing import jwks, mint, new_signing_key, next_change, retire, spent

ISSUER = "modelport:ws"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _verifier(*keys, cache_size: int = 100) -> Verifier:  # type: ignore[no-untyped-def]
    doc = {"issuer": ISSUER, "keys": [k.public_jwk for k in keys]}
    return Verifier(TokenKeys.from_document(doc), cache_size)


def test_a_token_carries_the_claims_and_refresh_comes_at_half_its_life() -> None:
    key = new_signing_key()
    token = mint(key, ISSUER, "svc", "client-a", ttl_s=600, now=1_000_000)
    assert (token.refresh_after, token.expiry_on) == (1_000_300, 1_000_600)
    header = jwt.get_unverified_header(token.access_token)
    assert header["alg"] == "EdDSA" and header["kid"] == key.kid
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["aud"] == "svc" and claims["sub"] == "client-a"
    assert claims["iat"] == claims["nbf"] == 1_000_000 and claims["exp"] == 1_000_600
    other = mint(key, ISSUER, "svc", "client-a", ttl_s=600, now=1_000_000)
    assert (
        claims["jti"] != jwt.decode(other.access_token, options={"verify_signature": False})["jti"]
    )
    assert token.to_dict() == {
        "accessToken": token.access_token,
        "tokenType": "Bearer",
        "refreshAfter": 1_000_300,
        "expiryOn": 1_000_600,
    }


def test_a_verified_token_is_cached_until_it_expires_and_for_its_audience_only() -> None:
    key = new_signing_key()
    verifier = _verifier(key)
    token = mint(key, ISSUER, "svc", "admin", ttl_s=600, now=1_000_000)
    header = f"Bearer {token.access_token}".encode()
    assert verifier.token_refusal(header, "svc", now=1_000_001) is None
    assert len(verifier._cache) == 1
    assert verifier.token_refusal(header, "svc", now=1_000_500) is None  # from the cache
    assert verifier.token_refusal(header, "other", now=1_000_500) == WRONG_AUDIENCE
    assert verifier.token_refusal(header, "svc", now=1_000_600) == EXPIRED
    assert len(verifier._cache) == 0  # an expired entry leaves


def test_the_cache_is_bounded_whatever_clients_send() -> None:
    key = new_signing_key()
    verifier = _verifier(key, cache_size=5)
    for i in range(20):
        token = mint(key, ISSUER, "svc", f"c{i}", ttl_s=600)
        assert verifier.token_refusal(f"Bearer {token.access_token}".encode(), "svc") is None
    assert len(verifier._cache) == 5


def test_rotation_keeps_the_old_key_verifying_for_one_lifetime_then_drops_it() -> None:
    old = new_signing_key(T0)
    retired = retire(old, T0 + timedelta(minutes=5), ttl_s=3600)
    new = new_signing_key(T0 + timedelta(minutes=5))
    assert not retired.signing and new.signing
    assert retired.verify_until == T0 + timedelta(minutes=65)
    keys = [new, retired]
    assert [k["kid"] for k in jwks(keys, T0 + timedelta(minutes=64))["keys"]] == [new.kid, old.kid]
    assert next_change(keys, T0 + timedelta(minutes=10)) == retired.verify_until
    assert not spent(retired, T0 + timedelta(minutes=64))
    assert spent(retired, T0 + timedelta(minutes=65))
    assert [k["kid"] for k in jwks(keys, T0 + timedelta(minutes=65))["keys"]] == [new.kid]
    assert next_change(keys, T0 + timedelta(minutes=65)) is None
    assert not spent(new, T0 + timedelta(days=365))  # the signing key never is


def test_jwks_hold_public_keys_only() -> None:
    published = jwks([new_signing_key()], T0)["keys"][0]
    assert published["kty"] == "OKP" and published["crv"] == "Ed25519" and "d" not in published


def test_the_token_lifetime_setting_is_checked() -> None:
    assert lifetime_s({}) == DEFAULT_LIFETIME_S == 3600
    assert lifetime_s({LIFETIME_VARIABLE: "120"}) == 120
    for bad in ("9", "nope", str(10**9)):
        with pytest.raises(ConfigError, match="token lifetime"):
            lifetime_s({LIFETIME_VARIABLE: bad})


def test_switching_auth_modes_follows_v1s_update_rules() -> None:
    with pytest.raises(ConfigError, match=r"cannot set both token_auth_enabled and auth_enabled\."):
        auth_update(True, True, True)
    with pytest.raises(
        ConfigError,
        match=r"cannot set token_auth_enabled without disabling key auth "
        r"\(set auth_enabled to False\)\.",
    ):
        auth_update(True, None, True)
    assert auth_update(True, False, True) == {"auth_enabled": False, "token_auth_enabled": True}
    assert auth_update(False, None, True) == {"token_auth_enabled": True}
    # Keys back on: tokens off, as the two are exclusive.
    assert auth_update(False, True, None) == {"auth_enabled": True, "token_auth_enabled": False}


def test_a_service_principal_is_a_scoring_client_secret_and_never_shows_it() -> None:
    from modelport import ServicePrincipalAuthentication, Workspace
    from modelport.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not a modelport client secret"):
        ServicePrincipalAuthentication("tenant", "scorer", "an-admin-token-perhaps")
    auth = ServicePrincipalAuthentication("tenant", "scorer", "mpc_s3cret")
    assert "mpc_s3cret" not in repr(auth)
    with pytest.raises(InvalidInputError, match="takes ServicePrincipalAuthentication"):
        Workspace("http://127.0.0.1:1", auth="mpc_s3cret")  # type: ignore[arg-type]
    with Workspace("http://127.0.0.1:1", auth=auth) as ws:
        assert ws.auth is auth
