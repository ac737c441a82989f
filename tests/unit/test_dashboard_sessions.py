"""Dashboard sessions, CSRF and the viewer credential: pure logic, a fake clock."""

from __future__ import annotations

from pathlib import Path

from modelport.control.dashboard.sessions import (
    SessionStore,
    cookie_settings,
    csrf_ok,
    origin_ok,
)
from modelport.control.viewer import Role, credential_path, new_viewer_token, role_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_cookie_until_it_expires() -> None:
    clock = Clock()
    store = SessionStore(lifetime_s=60, clock=clock)
    cookie, session = store.create(Role.ADMIN)
    assert store.get(cookie) is session
    assert store.get(cookie + "x") is None
    assert store.get(None) is None
    clock.now += 59
    assert store.get(cookie) is session
    clock.now += 1
    assert store.get(cookie) is None


def test_signing_out_ends_the_session_for_good() -> None:
    store = SessionStore()
    cookie, _ = store.create(Role.VIEWER)
    store.drop(cookie)
    assert store.get(cookie) is None
    assert repr(store) == "<SessionStore sessions=0>"


def test_sessions_have_their_own_cookie_and_csrf_token() -> None:
    store = SessionStore()
    a_cookie, a = store.create(Role.ADMIN)
    b_cookie, b = store.create(Role.ADMIN)
    assert a_cookie != b_cookie
    assert a.csrf != b.csrf
    assert len(a.csrf) >= 40


def test_only_an_admin_session_can_change_things() -> None:
    store = SessionStore()
    assert store.create(Role.ADMIN)[1].can_change
    assert not store.create(Role.VIEWER)[1].can_change


def test_csrf_needs_the_sessions_own_token() -> None:
    _, session = SessionStore().create(Role.ADMIN)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf[:-1])
    assert not csrf_ok(session, "é" + session.csrf)


def test_another_origin_is_refused_even_on_the_same_site() -> None:
    own = "http://127.0.0.1:7370"
    assert origin_ok(None, own)
    assert origin_ok("http://127.0.0.1:7370", own)
    assert not origin_ok("http://127.0.0.1:8000", own)
    assert not origin_ok("http://localhost:7370", own)
    assert not origin_ok("null", own)


def test_the_cookie_is_httponly_strict_and_secure_under_tls() -> None:
    plain = cookie_settings(secure=False)
    assert plain["httponly"] is True
    assert plain["samesite"] == "strict"
    assert plain["secure"] is False
    assert cookie_settings(secure=True)["secure"] is True


def test_the_viewer_token_signs_in_as_viewer_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    admin = "a" * 43
    assert role_of("mpv_anything", admin, tmp_path) is None  # none made yet
    first = new_viewer_token(tmp_path)
    assert role_of(first, admin, tmp_path) is Role.VIEWER
    assert role_of(admin, admin, tmp_path) is Role.ADMIN
    assert role_of("", admin, tmp_path) is None
    second = new_viewer_token(tmp_path)
    assert role_of(first, admin, tmp_path) is None
    assert role_of(second, admin, tmp_path) is Role.VIEWER
    assert first not in credential_path(tmp_path).read_text()
    assert credential_path(tmp_path).stat().st_mode & 0o077 == 0
