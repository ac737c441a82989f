"""Dashboard sign-in sessions, kept on the server, and their CSRF tokens.

A session is a random id in a cookie (HttpOnly, SameSite=Strict, Secure under TLS,
path ``/dashboard``); the server keeps the id's SHA-256, the role and a CSRF token, so
signing out ends the session for good and a restart signs everyone out.  Every change
(a POST) must carry the session's CSRF token, compared in constant time, and, when the
browser sends one, an ``Origin`` equal to the dashboard's own: a page of another origin
(even one on the same site, which SameSite=Strict does not stop) changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelport.control.viewer import Role

COOKIE = "modelport_session"
COOKIE_PATH = "/dashboard"
LIFETIME_S = 8 * 3600.0  # a working day; then sign in again
MAX_SESSIONS = 1000  # the oldest goes first past this: memory stays bounded


@dataclass
class Session:
    role: Role
    csrf: str
    expires: float
    notices: list[str] = field(default_factory=list)  # shown once on the next page

    @property
    def can_change(self) -> bool:
        return self.role is Role.ADMIN


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    def __init__(
        self, lifetime_s: float = LIFETIME_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def __repr__(self) -> str:
        return f"<SessionStore sessions={len(self._sessions)}>"

    def create(self, role: Role) -> tuple[str, Session]:
        """A new session: its cookie value (the caller sets it) and the session."""
        self._expire()
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        cookie = secrets.token_urlsafe(32)
        session = Session(role, secrets.token_urlsafe(32), self._clock() + self._lifetime_s)
        self._sessions[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        key = _key(cookie)
        session = self._sessions.get(key)
        if session is not None and session.expires <= self._clock():
            del self._sessions[key]
            return None
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_key(cookie), None)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8", "replace"), session.csrf.encode()
    )


def origin_ok(origin: str | None, own: str) -> bool:
    """No ``Origin`` (an old browser, or a same-origin GET) or exactly our own."""
    return origin is None or origin.rstrip("/") == own.rstrip("/")


def cookie_settings(secure: bool) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": secure,
        "path": COOKIE_PATH,
        "max_age": int(LIFETIME_S),
    }
