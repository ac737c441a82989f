"""The web dashboard: server-rendered pages over the management API's own routes.

Jinja2 templates with htmx for the parts that change in place and uPlot for the live
charts, both vendored in ``static/vendor`` (pinned, with their licences), so ``pip
install`` alone gives a working dashboard and a browser fetches nothing elsewhere.
Sessions and CSRF: ``sessions.py``; who may do what: ``access.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from modelport.control.dashboard import actions, feeds, pages
from modelport.control.dashboard.access import PREFIX, SIGN_IN, Refused, signed_in
from modelport.control.dashboard.rendering import HERE, page
from modelport.control.dashboard.sessions import SessionStore
from modelport.errors import ModelportError

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
ApiHandler = Callable[[Request, Any], Response | Awaitable[Response]]

__all__ = ["PREFIX", "install"]
PAGES = f"{PREFIX}/"


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    if exc.status == 401 and request.method == "GET" and "/feeds/" not in request.url.path:
        return RedirectResponse(SIGN_IN, status_code=303)
    try:
        session = signed_in(request)
    except Refused:
        session = None
    return page(request, "error.html", session, exc.status, message=exc.message)


def _pages_of(api_handler: ApiHandler) -> ExceptionHandler:
    """A page for an error on a dashboard page (a service gone, a name mistyped); the
    API's JSON answer everywhere else, the pages' scripts' feeds included."""

    async def handle(request: Request, exc: Exception) -> Response:
        path = request.url.path
        feed = path.startswith(f"{PREFIX}/feeds/")
        if not isinstance(exc, ModelportError) or not path.startswith(PAGES) or feed:
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        try:
            session = signed_in(request)
        except Refused:
            return RedirectResponse(SIGN_IN, status_code=303)
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return page(request, "error.html", session, exc.http_status, message=message)

    return handle


def install(app: FastAPI) -> None:
    app.state.dashboard_sessions = SessionStore()
    app.add_exception_handler(Refused, _refused)
    api_handler = app.exception_handlers[ModelportError]  # install_error_handlers' own
    app.add_exception_handler(ModelportError, _pages_of(api_handler))
    app.include_router(actions.router)
    app.include_router(feeds.router)
    app.include_router(pages.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        """A browser opening the management address finds the dashboard."""
        return RedirectResponse(f"{PREFIX}/", status_code=307)
