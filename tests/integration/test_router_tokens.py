"""The router's token check, case by case: what a token-auth route admits and refuses.

Each refusal is a 401 with RFC 6750's ``WWW-Authenticate: Bearer error="invalid_token"``
and a reason that names what is wrong without echoing the credential; no refused
request reaches the replica.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from modelport.control.router_process import RouterProcess
from modelport.router import auth
from modelport.store.signing import SigningKey, mint, new_signing_key
from tests.integration.test_router import TOKEN, FakeReplica

ISSUER = "modelport:test-workspace"
KEY = "a-service-key-1234"


def _tokens(*keys: SigningKey, issuer: str = ISSUER) -> dict[str, Any]:
    return {"issuer": issuer, "keys": [k.public_jwk for k in keys]}


def _entry(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "auth": True,
        "keyDigests": [hashlib.sha256(KEY.encode()).hexdigest()],
        "replicas": [["127.0.0.1", port]],
        "scoringTimeoutMs": 60000,
        "maxConcurrent": 4,
        **extra,
    }


class Routed:
    def __init__(self, proc: RouterProcess, fake: FakeReplica) -> None:
        self.proc, self.fake = proc, fake

    def url(self, name: str) -> str:
        return f"{self.proc.url}/api/v1/service/{name}/score"

    async def publish(self, tokens: dict[str, Any] | None) -> None:
        port = self.fake.port
        await self.proc.publish(
            {
                "tok": _entry(port, tokenAuth=True, audience="tok"),
                "other": _entry(port, tokenAuth=True, audience="other"),
                "keyed": _entry(port),
            },
            tokens=tokens,
        )


@asynccontextmanager
async def routed(tmp_path: Path, tokens: dict[str, Any]) -> AsyncIterator[Routed]:
    fake = FakeReplica()
    await fake.start()
    proc = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
    await proc.start()
    it = Routed(proc, fake)
    try:
        await it.publish(tokens)
        yield it
    finally:
        await fake.stop()
        await proc.stop()


async def _post(url: str, credential: str | None) -> httpx.Response:
    headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, json={"id": "x"}, headers=headers)


def _refused(response: httpx.Response, reason: str, credential: str | None = None) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    body = response.json()["error"]
    assert body == {"code": "invalid_token", "message": reason}
    if credential:
        assert credential not in response.text and credential not in challenge


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "tok",
        "sub": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }
    return {**claims, **changes}


def _signed(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    private = serialization.load_pem_private_key(key.private_pem.encode(), None)
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key.kid, **header})  # type: ignore[arg-type]


def _cases(key: SigningKey) -> list[tuple[str, str, str]]:
    """(case, token, the reason the router gives)."""
    good = mint(key, ISSUER, "tok", "admin", 600).access_token
    head, payload, signature = good.split(".")
    none = _b64({"alg": "none", "typ": "JWT", "kid": key.kid}) + "." + _b64(_claims()) + "."
    # Algorithm confusion: HS256 with the public key's bytes as the shared secret.
    public = base64.urlsafe_b64decode(key.public_jwk["x"] + "==")
    confused = jwt.encode(_claims(), public, algorithm="HS256", headers={"kid": key.kid})
    tampered_payload = f"{head}.{_b64({**_claims(), 'aud': 'tok', 'sub': 'root'})}.{signature}"
    # One bit of the signature's first byte, re-encoded canonically: changing the text's
    # last characters could instead make an encoding the router rightly calls malformed.
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    stranger = new_signing_key()
    return [
        ("alg none", none, auth.ALGORITHM_REFUSED),
        ("HS256 with the public key", confused, auth.ALGORITHM_REFUSED),
        ("unknown kid", _signed(stranger, _claims()), auth.UNKNOWN_KEY),
        ("expired", _signed(key, _claims(iat=1, nbf=1, exp=100)), auth.EXPIRED),
        ("not yet valid", _signed(key, _claims(nbf=int(time.time()) + 600)), auth.NOT_YET_VALID),
        ("another service's audience", _signed(key, _claims(aud="other")), auth.WRONG_AUDIENCE),
        ("another issuer", _signed(key, _claims(iss="modelport:elsewhere")), auth.WRONG_ISSUER),
        ("tampered payload", tampered_payload, auth.BAD_SIGNATURE),
        ("tampered signature", f"{head}.{payload}.{flipped}", auth.BAD_SIGNATURE),
        ("malformed", "abc.def.ghi", auth.MALFORMED),
        (
            "a claim missing",
            _signed(key, {k: v for k, v in _claims().items() if k != "jti"}),
            auth.CLAIMS_MISSING,
        ),
        ("a key where a token is required", KEY, auth.KEY_FOR_TOKEN),
    ]


CASES = [c[0] for c in _cases(new_signing_key())]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_credential_is_refused_with_its_reason(tmp_path: Path, case: str) -> None:
    key = new_signing_key()
    _, token, reason = next(c for c in _cases(key) if c[0] == case)

    async def go() -> None:
        async with routed(tmp_path, _tokens(key)) as it:
            _refused(await _post(it.url("tok"), token), reason, token)
            assert it.fake.seen == []

    asyncio.run(go())


def test_a_valid_token_scores_its_own_service_only_and_a_key_route_takes_keys_only(
    tmp_path: Path,
) -> None:
    key = new_signing_key()
    token = mint(key, ISSUER, "tok", "admin", 600).access_token

    async def go() -> None:
        async with routed(tmp_path, _tokens(key)) as it:
            for _ in range(3):  # the second and third come from the cache
                assert (await _post(it.url("tok"), token)).status_code == 200
            _refused(await _post(it.url("other"), token), auth.WRONG_AUDIENCE, token)
            _refused(await _post(it.url("tok"), None), auth.MISSING)
            keyed = await _post(it.url("keyed"), token)
            assert keyed.status_code == 401
            assert keyed.json()["error"]["message"] == auth.TOKEN_FOR_KEY
            assert token not in keyed.text
            assert (await _post(it.url("keyed"), KEY)).status_code == 200
            assert it.fake.seen == ["x"] * 4

    asyncio.run(go())


def test_a_token_of_a_retired_key_is_refused_once_the_key_is_unpublished(tmp_path: Path) -> None:
    old, new = new_signing_key(), new_signing_key()
    old_token = mint(old, ISSUER, "tok", "admin", 600).access_token
    new_token = mint(new, ISSUER, "tok", "admin", 600).access_token

    async def go() -> None:
        async with routed(tmp_path, _tokens(old)) as it:
            assert (await _post(it.url("tok"), old_token)).status_code == 200  # now cached
            await it.publish(_tokens(new, old))  # rotated: both verify
            assert (await _post(it.url("tok"), old_token)).status_code == 200
            assert (await _post(it.url("tok"), new_token)).status_code == 200
            await it.publish(_tokens(new))  # the old key's tokens have all expired
            _refused(await _post(it.url("tok"), old_token), auth.UNKNOWN_KEY, old_token)
            assert (await _post(it.url("tok"), new_token)).status_code == 200
            await it.publish(None)  # no keys at all: no token is taken
            _refused(await _post(it.url("tok"), new_token), auth.NO_KEYS, new_token)

    asyncio.run(go())


def test_the_table_never_carries_a_private_key() -> None:
    key = new_signing_key()
    assert "d" not in key.public_jwk and set(key.public_jwk) >= {"kty", "crv", "x", "kid"}
    # A JWK with a private part is ignored by the router, not used.
    leaked = {**key.public_jwk, "d": "AAAA"}
    assert auth.TokenKeys.from_document({"issuer": ISSUER, "keys": [leaked]}).keys == {}
