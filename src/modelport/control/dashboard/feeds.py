"""What the pages' scripts read: live counters, followed logs, keys on click.

Each is a management API route function called with the dashboard's request, so the
answers are the API's own; only who may read them differs (a session, not a token).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from modelport.control import api_endpoints, api_services
from modelport.control.dashboard.access import PREFIX, may_see_keys, signed_in
from modelport.control.dashboard.rendering import SECURITY_HEADERS, fragment

router = APIRouter(prefix=f"{PREFIX}/feeds", include_in_schema=False)
Replica = Annotated[int | None, Query(ge=0)]


@router.get("/counters/{service}")
async def counters(service: str, request: Request) -> Response:
    """A service's (or an endpoint version's) router counters, for the live charts."""
    signed_in(request)
    found = await api_services.service_counters(service, request)
    return JSONResponse(found, headers=SECURITY_HEADERS)


@router.get("/services/{name}/logs", response_model=None)
async def service_logs(name: str, request: Request, replica: Replica = None) -> Any:
    signed_in(request)
    return await api_services.service_logs(
        name, request, num_lines=500, follow=True, replica=replica, since=None, tail=500
    )


@router.get("/endpoints/{name}/versions/{version}/logs")
async def version_logs(name: str, version: str, request: Request) -> Response:
    signed_in(request)
    found = await api_endpoints.endpoint_logs(name, request, version, 500)
    return PlainTextResponse(found["logs"], headers=SECURITY_HEADERS)


@router.get("/requests/{name}", response_model=None)
async def requests(name: str, request: Request, status: str | None = None) -> Any:
    """The request log of a service or endpoint, followed (JSON lines)."""
    signed_in(request)
    return await api_services.service_requests(
        name, request, follow=True, status=status or None, since=None, tail=100
    )


@router.get("/services/{name}/keys")
async def service_keys(name: str, request: Request) -> Response:
    may_see_keys(signed_in(request))
    keys = await run_in_threadpool(api_services.service_keys, name, request)
    return fragment(request, "_keys.html", keys=keys)


@router.get("/endpoints/{name}/keys")
async def endpoint_keys(name: str, request: Request) -> Response:
    may_see_keys(signed_in(request))
    keys = await run_in_threadpool(api_endpoints.endpoint_keys, name, request)
    return fragment(request, "_keys.html", keys=keys)
