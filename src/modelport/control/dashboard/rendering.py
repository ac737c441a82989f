"""Templates, and the headers every dashboard page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from modelport import __version__
from modelport.control.dashboard import views
from modelport.control.dashboard.sessions import Session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["reason"] = views.reason
# Everything is served by modelport itself: no other origin, no inline script.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def page(
    request: Request,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    notices = list(session.notices) if session is not None else []
    if session is not None:
        session.notices.clear()
    return templates.TemplateResponse(
        request,
        template,
        {"session": session, "notices": notices, "version": __version__, **context},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def fragment(request: Request, template: str, **context: Any) -> Response:
    return templates.TemplateResponse(request, template, context, headers=SECURITY_HEADERS)
