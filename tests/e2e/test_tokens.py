"""Token auth end to end: a real server (tokens living 10 s), router and replicas; the SDK
and the CLI as an admin and as a scoring client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from modelport import (
    AksServiceAccessToken,
    Model,
    ServicePrincipalAuthentication,
    Webservice,
    Workspace,
)
from modelport.errors import (
    ConfigError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
)
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_cli import Cli
from tests.e2e.test_services import fixed, post, source

LIFETIME_S = 10


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "home", args=("--token-lifetime", str(LIFETIME_S)))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def admin(short_lived: ServerProcess) -> Iterator[Workspace]:
    with Workspace.from_config(short_lived.home) as workspace:
        yield workspace


@pytest.fixture
def scaler(admin: Workspace, tmp_path: Path) -> Model:
    folder = tmp_path / "scaler"
    folder.mkdir()
    (folder / "w.json").write_text('{"scale": 10}')
    return Model.register(admin, folder, "scaler")


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    return str(response.json()["error"]["message"])


def test_a_token_service_scores_with_tokens_only_and_switches_back_to_keys(
    admin: Workspace, scaler: Model, tmp_path: Path
) -> None:
    service = Model.deploy(
        admin, "tok-svc", [scaler], source(tmp_path), fixed(1, token_auth_enabled=True)
    )
    service.wait_for_deployment()
    assert service.token_auth_enabled and not service.auth_enabled
    with pytest.raises(InvalidInputError, match="uses token authentication"):
        service.get_keys()

    token, refresh_by = service.get_token()
    assert refresh_by > time.time()
    access = service.get_access_token()
    assert isinstance(access, AksServiceAccessToken) and access.token_type == "Bearer"
    assert access.expiry_on - access.refresh_after == LIFETIME_S // 2
    claims = jwt.decode(access.access_token, options={"verify_signature": False})
    assert claims["aud"] == "tok-svc" and claims["sub"] == "admin"
    assert claims["iss"].startswith("modelport:")
    assert access.access_token not in repr(access)

    assert post(service, {"x": [1]}, token).status_code == 200
    assert "requires a token" in _refusal(post(service, {"x": [1]}, "a" * 43))
    assert _refusal(post(service, {"x": [1]})) and _refusal(post(service, {"x": [1]}, token + "x"))

    # run() takes a token by itself, renews it after refresh_after, and retries once on a 401.
    assert service.run({"x": [2]})["y"] == [20]
    first = service._token
    assert first is not None
    wait_for(lambda: time.time() >= first.refresh_after, what="the token's refresh time")
    assert service.run({"x": [3]})["y"] == [30]
    assert service._token is not None and service._token.access_token != first.access_token
    service._token = AksServiceAccessToken("bogus.token.here", "Bearer", 2**40, 2**40)
    assert service.run({"x": [4]})["y"] == [40]
    wait_for(lambda: time.time() >= first.expiry_on, what="the first token to expire")
    assert _refusal(post(service, {"x": [1]}, first.access_token)) == "the token has expired"

    # The JWKS needs no credential and holds public keys only.
    jwks = httpx.get(f"{admin.url}/api/v1/tokens/jwks").json()
    assert jwks["keys"] and all("d" not in k and k["kty"] == "OKP" for k in jwks["keys"])

    # v1's update rules, then back to keys: the router takes keys again and no token.
    with pytest.raises(ConfigError, match="cannot set both token_auth_enabled and auth_enabled"):
        service.update(auth_enabled=True, token_auth_enabled=True)
    live = service.get_access_token().access_token
    service.update(auth_enabled=True)
    service.wait_for_deployment()
    assert service.auth_enabled and not service.token_auth_enabled
    primary, _ = service.get_keys()
    assert post(service, {"x": [1]}, primary).status_code == 200
    keyed = post(service, {"x": [1]}, live)
    assert keyed.status_code == 401 and "not a token" in keyed.json()["error"]["message"]
    with pytest.raises(InvalidInputError, match="does not use token authentication"):
        service.get_access_token()
    with pytest.raises(ConfigError, match=r"without disabling key auth"):
        service.update(token_auth_enabled=True)
    service.update(token_auth_enabled=True, auth_enabled=False)
    service.wait_for_deployment()
    assert service.run({"x": [5]})["y"] == [50]
    assert post(service, {"x": [1]}, primary).status_code == 401


def test_clients_get_tokens_for_their_services_only_and_rotation_retires_old_tokens(
    short_lived: ServerProcess, admin: Workspace, scaler: Model, tmp_path: Path
) -> None:
    cli = Cli(short_lived.home, tmp_path)
    token_svc = Model.deploy(
        admin, "tok-a", [scaler], source(tmp_path), fixed(1, token_auth_enabled=True)
    )
    keyed = Model.deploy(admin, "keyed", [scaler], source(tmp_path), fixed(1))
    token_svc.wait_for_deployment()
    keyed.wait_for_deployment()

    created = cli("client", "create", "scorer", "--service", "tok-a")
    assert created.code == 0, created.err
    secret = created.out.strip().splitlines()[-1]
    assert secret.startswith("mpc_")
    listed = cli("client", "list", "-o", "json").json()["value"]
    assert [(c["name"], c["services"]) for c in listed] == [("scorer", ["tok-a"])]
    assert secret not in cli("client", "list", "-o", "json").out
    assert cli("client", "create", "scorer", "--service", "tok-a").code != 0  # name taken
    assert cli("client", "create", "ghost", "--service", "nope").code == 2

    auth = ServicePrincipalAuthentication("tenant", "scorer", secret)
    with Workspace(admin.url, auth=auth) as as_client:
        service = Webservice(as_client, "tok-a")
        assert service.run({"x": [1]})["y"] == [10]
        claims = jwt.decode(service._token.access_token, options={"verify_signature": False})  # type: ignore[union-attr]
        assert claims["sub"] == "scorer"
        for call in (
            lambda: Webservice(as_client, "keyed"),
            lambda: as_client.client.call("POST", "/api/v1/services/keyed/token"),
            lambda: as_client.client.call("GET", "/api/v1/services/tok-a/keys"),
            lambda: as_client.client.call("GET", "/api/v1/services"),
            lambda: as_client.client.call("GET", "/api/v1/models"),
            lambda: as_client.client.call("POST", "/api/v1/tokens/rotate-key"),
            lambda: as_client.client.call("GET", "/api/v1/clients"),
        ):
            with pytest.raises(ForbiddenError, match="scoring client 'scorer'"):
                call()

        # Rotation: the new key signs at once, the old one verifies until its tokens expire.
        old = service.get_access_token()
        rotated = cli("token", "rotate-key", "-o", "json")
        assert rotated.code == 0, rotated.err
        kids = [(k["kid"], k["signing"]) for k in rotated.json()["value"]]
        assert len(kids) == 2 and kids[0][1] and not kids[1][1]
        assert jwt.get_unverified_header(old.access_token)["kid"] == kids[1][0]
        new = service.get_access_token()
        assert jwt.get_unverified_header(new.access_token)["kid"] == kids[0][0]
        assert post(token_svc, {"x": [1]}, old.access_token).status_code == 200
        assert post(token_svc, {"x": [1]}, new.access_token).status_code == 200

        def retired() -> bool:
            return len(cli("token", "keys", "-o", "json").json()["value"]) == 1

        wait_for(retired, timeout_s=LIFETIME_S * 4, what="the old signing key to be dropped")
        jwks = httpx.get(f"{admin.url}/api/v1/tokens/jwks").json()["keys"]
        assert [k["kid"] for k in jwks] == [kids[0][0]]
        # A replay of the old key's token, even with its times forged, is refused.
        refused = post(token_svc, {"x": [1]}, old.access_token)
        assert _refusal(refused) in (
            "the token has expired",
            "the token was signed by a key this router does not know (retired or foreign)",
        )

        shown = cli("service", "get-access-token", "-n", "tok-a", "-o", "json")
        assert shown.code == 0 and set(shown.json()) == {
            "accessToken",
            "tokenType",
            "refreshAfter",
            "expiryOn",
        }
        assert cli("service", "get-access-token", "-n", "keyed").code == 2

        # Revoked: the secret gets nothing more.
        assert cli("client", "delete", "scorer").code == 0
        with pytest.raises(UnauthorizedError):
            service.get_access_token()


def test_a_token_endpoint_takes_tokens_naming_the_endpoint_for_every_version(
    admin: Workspace, scaler: Model, tmp_path: Path
) -> None:
    from modelport import AksEndpoint
    from tests.e2e.test_endpoints import HEADER, script, version_config

    config = version_config("blue", token_auth_enabled=True)
    endpoint = Model.deploy(admin, "shop", [scaler], script(tmp_path, "blue"), config)
    assert isinstance(endpoint, AksEndpoint)
    endpoint.wait_for_deployment()
    assert endpoint.token_auth_enabled and not endpoint.auth_enabled
    with pytest.raises(InvalidInputError, match="uses token authentication"):
        endpoint.get_keys()
    token = endpoint.get_access_token()
    assert jwt.decode(token.access_token, options={"verify_signature": False})["aud"] == "shop"
    assert endpoint.run({"x": [1]})["version"] == "blue"
    assert endpoint.versions["blue"].run({"x": [2]})["y"] == [20]  # pinned, the same token
    pinned = httpx.post(
        endpoint.scoring_uri,
        json={"x": [1]},
        headers={"Authorization": f"Bearer {token.access_token}", HEADER: "blue"},
    )
    assert pinned.status_code == 200
    # A token for the version's own service name is no token for the endpoint.
    with pytest.raises(NotFoundError):
        admin.client.call("POST", "/api/v1/services/shop.blue/token")
    shown = Cli(tmp_path / "home", tmp_path)(
        "endpoint", "get-access-token", "-n", "shop", "-o", "json"
    )
    assert shown.code == 0 and shown.json()["tokenType"] == "Bearer"

    with pytest.raises(ConfigError, match="cannot set both"):
        endpoint.update(auth_enabled=True, token_auth_enabled=True)
    endpoint.update(auth_enabled=True)
    assert endpoint.auth_enabled and not endpoint.token_auth_enabled

    def keys_taken() -> bool:
        primary = endpoint.get_keys()[0]
        return post(endpoint, {"x": [1]}, primary).status_code == 200

    wait_for(keys_taken, what="the router to take the endpoint's keys")
    assert post(endpoint, {"x": [1]}, token.access_token).status_code == 401
