"""The dashboard's sign-in, sessions and refusals over HTTP, in process (no browser):
what holds whatever the page's buttons show.  The browser tests are in
tests/e2e/test_dashboard.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelport.control.app import create_app
from modelport.control.viewer import new_viewer_token
from modelport.control.workspace import ServerWorkspace
from modelport.envs.builder import build_key, machine_cache_dir
from modelport.spec.environment import EnvironmentSpec

TOKEN = "t" * 43
BASE = "http://testserver"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    ws = ServerWorkspace.open(home, None, TOKEN)
    with TestClient(create_app(ws), base_url=BASE, follow_redirects=False) as c:
        yield c
    ws.close()


def sign_in(client: TestClient, token: str = TOKEN) -> str:
    """Sign in; the CSRF token of the new session."""
    response = client.post("/dashboard/signin", data={"token": token})
    assert response.status_code == 303, response.text
    page = client.get("/dashboard/environments/none/versions/1")  # any page: its form
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_a_browser_at_the_management_address_is_sent_to_sign_in(client: TestClient) -> None:
    assert client.get("/").headers["location"] == "/dashboard/"
    assert client.get("/dashboard/").headers["location"] == "/dashboard/signin"
    page = client.get("/dashboard/signin")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    # The API itself still wants its token, and does not list the dashboard's pages.
    assert client.get("/openapi.json").status_code == 401
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert not [p for p in schema["paths"] if p.startswith("/dashboard")]
    assert client.post("/").status_code == 401  # "/" is open to read only


def test_a_wrong_token_signs_nobody_in(client: TestClient) -> None:
    for token in ("", "wrong", TOKEN[:-1], TOKEN + "x", "mpv_" + "x" * 43):
        response = client.post("/dashboard/signin", data={"token": token})
        assert response.status_code in (401, 422), token
        assert "set-cookie" not in response.headers
        assert "Traceback" not in response.text
    assert client.get("/dashboard/models").status_code == 303


def test_the_session_cookie_is_httponly_strict_and_scoped(client: TestClient) -> None:
    response = client.post("/dashboard/signin", data={"token": TOKEN})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http here; under TLS it is Secure
    assert TOKEN not in cookie


def test_a_secure_cookie_under_tls(home: Path) -> None:
    ws = ServerWorkspace.open(home, None, TOKEN)
    try:
        with TestClient(create_app(ws), base_url="https://testserver") as c:
            response = c.post("/dashboard/signin", data={"token": TOKEN}, follow_redirects=False)
            assert "Secure" in response.headers["set-cookie"]
    finally:
        ws.close()


def test_a_change_without_the_csrf_token_or_from_another_origin_is_refused(
    client: TestClient,
) -> None:
    csrf = sign_in(client)
    target = "/dashboard/services/demo/regenerate"
    missing = client.post(target, data={"keyType": "Primary"})
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = client.post(target, data={"keyType": "Primary", "csrf": csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    other = client.post(
        target,
        data={"keyType": "Primary", "csrf": csrf},
        headers={"Origin": "http://127.0.0.1:9999"},
    )
    assert other.status_code == 403 and "own pages" in other.text
    foreign_signin = client.post(
        "/dashboard/signin", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert foreign_signin.status_code == 403


def test_a_viewer_changes_nothing_and_sees_no_keys(client: TestClient, home: Path) -> None:
    csrf = sign_in(client, new_viewer_token(home))
    page = client.get("/dashboard/environments/none/versions/1")
    assert 'data-role="viewer"' in page.text
    for path in (
        "/dashboard/services/demo/regenerate",
        "/dashboard/endpoints/shop/split",
        "/dashboard/endpoints/shop/promote",
        "/dashboard/try/service/demo",
    ):
        refused = client.post(path, data={"csrf": csrf, "keyType": "Primary"})
        assert refused.status_code == 403, path
        assert "viewer session changes nothing" in refused.text
    assert client.get("/dashboard/feeds/services/demo/keys").status_code == 403
    assert client.get("/dashboard/feeds/endpoints/shop/keys").status_code == 403


def test_signing_out_ends_the_session_on_the_server(client: TestClient) -> None:
    csrf = sign_in(client)
    cookie = client.cookies.get("modelport_session")
    assert client.post("/dashboard/signout", data={"csrf": csrf}).status_code == 303
    client.cookies.set("modelport_session", str(cookie), path="/dashboard")
    assert client.get("/dashboard/models").headers["location"] == "/dashboard/signin"


def test_an_environments_build_log_through_the_api_and_the_page(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    admin = {"Authorization": f"Bearer {TOKEN}"}
    doc = {"name": "e", "environmentVariables": {"A": "1"}}
    assert client.post("/api/v1/environments", json=doc, headers=admin).status_code == 201
    missing = client.get("/api/v1/environments/e/versions/1/buildLog", headers=admin)
    assert missing.status_code == 404
    assert "has not been built on this machine" in missing.json()["error"]["message"]
    spec = EnvironmentSpec.model_validate(doc)
    log = machine_cache_dir() / f"{build_key(spec)}.build.log"
    log.parent.mkdir(parents=True)
    log.write_text("uv venv ...\ninstalled <4 packages>\n")
    found = client.get("/api/v1/environments/e/versions/1/buildLog", headers=admin)
    assert found.status_code == 200 and "installed <4 packages>" in found.json()["log"]
    sign_in(client)
    page = client.get("/dashboard/environments/e/versions/1")
    assert page.status_code == 200 and "installed &lt;4 packages&gt;" in page.text


def test_an_error_on_a_page_is_a_page_and_on_a_feed_the_apis_json(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/dashboard/services/nope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Webservice with name nope not found" in page.text
    feed = client.get("/dashboard/feeds/services/nope/keys")
    assert feed.status_code == 404 and feed.json()["error"]["code"] == "not_found"
