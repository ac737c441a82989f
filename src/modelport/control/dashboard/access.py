"""Who may see and change what: the session behind each dashboard request.

Pages and feeds need a signed-in session; changes also need the session's CSRF token,
our own ``Origin`` and the admin role.  Each check raises :class:`Refused`, which the
dashboard answers with a page (or a redirect to sign-in), never a stack trace.
"""

from __future__ import annotations

from starlette.requests import Request

from modelport.control.dashboard.sessions import (
    COOKIE,
    Session,
    SessionStore,
    csrf_ok,
    origin_ok,
)

PREFIX = "/dashboard"
SIGN_IN = f"{PREFIX}/signin"


class Refused(Exception):
    """A request the dashboard will not serve; ``status`` 401 sends a browser to sign in."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sessions_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.dashboard_sessions
    return store


def own_origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def signed_in(request: Request) -> Session:
    """The request's session (any role)."""
    session = sessions_of(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise Refused(401, "sign in first")
    return session


async def changer(request: Request) -> Session:
    """The session of a request that changes something: admin, CSRF token, own origin."""
    session = signed_in(request)
    if not origin_ok(request.headers.get("origin"), own_origin(request)):
        raise Refused(403, "a change must come from the dashboard's own pages")
    form = await request.form()
    token = request.headers.get("x-csrf-token") or form.get("csrf")
    if not csrf_ok(session, token if isinstance(token, str) else None):
        raise Refused(403, "missing or wrong CSRF token: reload the page and try again")
    if not session.can_change:
        raise Refused(403, "a viewer session changes nothing")
    return session


def may_see_keys(session: Session) -> None:
    if not session.can_change:
        raise Refused(403, "keys are for the admin; a viewer session does not see them")
