"""The dashboard's pages: each reads through the management API's own route functions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from modelport.control import api_endpoints, api_environments, api_models, api_services
from modelport.control.dashboard import views
from modelport.control.dashboard.access import PREFIX, signed_in
from modelport.control.dashboard.rendering import fragment, page
from modelport.errors import NotFoundError

router = APIRouter(prefix=PREFIX, include_in_schema=False)


async def _overview(request: Request) -> dict[str, Any]:
    services = await run_in_threadpool(api_services.list_services, request)
    endpoints = await run_in_threadpool(api_endpoints.list_endpoints, request)
    return {
        "services": [views.row(s, "service") for s in services["value"]],
        "endpoints": [views.row(e, "endpoint") for e in endpoints["value"]],
    }


@router.get("/")
async def overview(request: Request) -> Response:
    session = signed_in(request)
    return page(request, "overview.html", session, **await _overview(request))


@router.get("/partials/overview")
async def overview_rows(request: Request) -> Response:
    """The tables alone, polled by the overview page so states change in place."""
    session = signed_in(request)
    return fragment(request, "_overview_tables.html", session=session, **await _overview(request))


@router.get("", include_in_schema=False)
async def bare() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/services/{name}")
async def service(name: str, request: Request) -> Response:
    session = signed_in(request)
    view = await run_in_threadpool(api_services.get_service, name, request)
    ready, desired = views.replica_counts(view)
    return page(
        request,
        "service.html",
        session,
        service=view,
        ready=ready,
        desired=desired,
        live=view["name"],
        curl=views.curl_line(view["scoringUri"], '{"data": [[1, 2, 3, 4]]}'),
    )


@router.get("/endpoints/{name}")
async def endpoint(name: str, request: Request) -> Response:
    session = signed_in(request)
    view = await api_endpoints.get_endpoint(name, request)
    ready, desired = views.replica_counts(view)
    versions = list(view["versions"].values())
    return page(
        request,
        "endpoint.html",
        session,
        endpoint=view,
        versions=versions,
        ready=ready,
        desired=desired,
        live=_picked(request.query_params.get("live"), versions),
        curl=views.curl_line(view["scoringUri"], '{"data": [[1, 2, 3, 4]]}'),
    )


def _picked(wanted: str | None, versions: list[dict[str, Any]]) -> str | None:
    """The version service the live view shows: the one asked for, else the one with
    the largest share of the traffic now."""
    services = [v["service"] for v in versions]
    if wanted in services:
        return wanted
    busiest = max(versions, key=lambda v: v.get("share", 0), default=None)
    return None if busiest is None else str(busiest["service"])


@router.get("/services/{name}/logs")
async def logs(name: str, request: Request) -> Response:
    session = signed_in(request)
    view = await run_in_threadpool(api_services.get_service, name, request)
    return page(
        request,
        "logs.html",
        session,
        service=view,
        replica_feed=f"{PREFIX}/feeds/services/{name}/logs",
        follow=True,
        request_feed=f"{PREFIX}/feeds/requests/{name}",
    )


@router.get("/endpoints/{name}/versions/{version}/logs")
async def version_logs(name: str, version: str, request: Request) -> Response:
    session = signed_in(request)
    view = await api_endpoints.get_endpoint(name, request)
    chosen = view["versions"].get(version)
    if chosen is None:
        return page(request, "error.html", session, 404, message=f"no version {version!r}")
    return page(
        request,
        "logs.html",
        session,
        service=chosen,
        replica_feed=f"{PREFIX}/feeds/endpoints/{name}/versions/{version}/logs",
        follow=False,  # an endpoint version's logs are read again every few seconds
        request_feed=f"{PREFIX}/feeds/requests/{name}",
    )


@router.get("/models")
async def models(request: Request) -> Response:
    session = signed_in(request)
    found = await run_in_threadpool(api_models.list_models, request, None, [], [], False)
    services = await run_in_threadpool(api_services.list_services, request)
    endpoints = await run_in_threadpool(api_endpoints.list_endpoints, request)
    used = views.model_usage(services["value"], endpoints["value"])
    environments = await run_in_threadpool(api_environments.list_environments, request, None, False)
    return page(
        request,
        "models.html",
        session,
        models=found["value"],
        used=used,
        environments=environments["value"],
    )


@router.get("/environments/{name}/versions/{version}")
async def environment(name: str, version: int, request: Request) -> Response:
    session = signed_in(request)
    found = await run_in_threadpool(api_environments.get_environment, name, version, request)
    log: str | None = None
    missing: str | None = None
    try:
        log = (await api_environments.build_log(name, version, request))["log"]
    except NotFoundError as exc:  # not built here (yet): the page says so
        missing = exc.message
    return page(request, "environment.html", session, env=found, log=log, missing=missing)
