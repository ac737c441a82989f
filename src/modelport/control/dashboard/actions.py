"""Sign-in, sign-out and every change the dashboard makes, each through the API's own
route function, after :func:`access.changer` has checked the session."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from modelport.control import api_endpoints, api_services, api_tokens
from modelport.control.dashboard import views
from modelport.control.dashboard.access import (
    PREFIX,
    SIGN_IN,
    Refused,
    changer,
    may_see_keys,
    own_origin,
    sessions_of,
    signed_in,
)
from modelport.control.dashboard.rendering import fragment, page
from modelport.control.dashboard.sessions import (
    COOKIE,
    Session,
    cookie_settings,
    csrf_ok,
    origin_ok,
)
from modelport.control.plane import plane_of
from modelport.control.viewer import role_of
from modelport.control.workspace import workspace_of
from modelport.errors import InvalidInputError, ModelportError
from modelport.spec import endpoint as rules

router = APIRouter(prefix=PREFIX, include_in_schema=False)
TRY_TIMEOUT_S = 60.0


def _back(to: str) -> Response:
    return RedirectResponse(to, status_code=303)


def _failed(session: Session, exc: ModelportError) -> None:
    session.notices.append(f"Error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))


@router.get("/signin")
async def sign_in_page(request: Request) -> Response:
    return page(request, "signin.html", None)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    if not origin_ok(request.headers.get("origin"), own_origin(request)):
        raise Refused(403, "sign in from the dashboard's own page")
    form = await request.form()
    presented = form.get("token")
    ws = workspace_of(request)
    role = None
    if isinstance(presented, str) and presented.strip():
        role = await run_in_threadpool(role_of, presented.strip(), ws.admin_token, ws.home)
    if role is None:
        return page(request, "signin.html", None, 401, failed=True)
    cookie, _ = sessions_of(request).create(role)
    response = _back(f"{PREFIX}/")
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, cookie, **cookie_settings(secure))  # type: ignore[arg-type]
    return response


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    # Any signed-in role may sign out; the CSRF token still guards against a forced one.
    session = signed_in(request)
    form = await request.form()
    token = form.get("csrf")
    if not csrf_ok(session, token if isinstance(token, str) else None):
        raise Refused(403, "missing or wrong CSRF token")
    sessions_of(request).drop(request.cookies.get(COOKIE))
    response = _back(SIGN_IN)
    response.delete_cookie(COOKIE, path=cookie_settings(False)["path"])  # type: ignore[arg-type]
    return response


@router.post("/services/{name}/regenerate")
async def regenerate_service_key(name: str, request: Request) -> Response:
    return await _regenerate(request, name, "services", api_services.regenerate_key)


@router.post("/endpoints/{name}/regenerate")
async def regenerate_endpoint_key(name: str, request: Request) -> Response:
    return await _regenerate(request, name, "endpoints", api_endpoints.regenerate_endpoint_key)


async def _regenerate(
    request: Request,
    name: str,
    kind: str,
    regenerate: Callable[[str, api_services.Regenerate, Request], Any],
) -> Response:
    """One key of a service or endpoint, through the API's own route function."""
    session = await changer(request)
    which = (await request.form()).get("keyType")
    try:
        body = api_services.Regenerate(key_type=str(which))
        await run_in_threadpool(regenerate, name, body, request)
        session.notices.append(f"{which} key of {name} regenerated: the old one is refused")
    except ModelportError as exc:
        _failed(session, exc)
    return _back(f"{PREFIX}/{kind}/{name}")


def _wanted_split(form: Any, names: list[str]) -> dict[str, int]:
    wanted = {}
    for name in names:
        raw = str(form.get(f"traffic-{name}", "")).strip()
        try:
            wanted[name] = int(raw or 0)
        except ValueError:
            raise InvalidInputError(
                f"traffic for version {name!r} must be a whole number of percent, not {raw!r}"
            ) from None
    return wanted


@router.post("/endpoints/{name}/split")
async def change_split(name: str, request: Request) -> Response:
    """Traffic, default and control of every version in one form; checked whole by the
    API's rules, then applied one version at a time (each a new route table: no request
    is dropped), lowered percentages first."""
    session = await changer(request)
    form = await request.form()
    try:
        record = await run_in_threadpool(workspace_of(request).endpoints.get, name)
        versions = list(record.versions)
        wanted = _wanted_split(form, [v.name for v in versions])
        default = str(form.get("default") or "") or None
        control = str(form.get("control") or "") or None
        views.checked_split(versions, wanted, default, control)
        current = {v.name: v.traffic_percentile for v in versions}
        for version, pct in views.split_steps(current, wanted):
            await _update_version(request, name, version, trafficPercentile=pct)
        if default and not rules.find(versions, default).is_default:
            await _update_version(request, name, default, isDefault=True)
        if control and not rules.find(versions, control).is_control:
            await _update_version(request, name, control, isControlVersionType=True)
        session.notices.append(f"traffic of {name} updated")
    except ModelportError as exc:
        _failed(session, exc)
    return _back(f"{PREFIX}/endpoints/{name}")


async def _update_version(request: Request, name: str, version: str, **given: Any) -> None:
    body = api_endpoints.VersionUpdate(**given)
    await run_in_threadpool(api_endpoints.update_version, name, version, body, request)


@router.post("/endpoints/{name}/promote")
async def promote(name: str, request: Request) -> Response:
    session = await changer(request)
    form = await request.form()
    try:
        steps = [int(s) for s in str(form.get("steps") or "10,25,50,100").split(",") if s.strip()]
        body = api_endpoints.Promote(
            version=str(form.get("version") or ""),
            steps=steps,
            step_seconds=float(str(form.get("stepSeconds") or 60)),
        )
        await api_endpoints.promote(name, body, request)
        session.notices.append(f"promoting {body.version} on {name}")
    except ValueError as exc:
        session.notices.append(f"Error: {exc}")
    except ModelportError as exc:
        _failed(session, exc)
    return _back(f"{PREFIX}/endpoints/{name}")


@router.post("/endpoints/{name}/promote/cancel")
async def cancel_promotion(name: str, request: Request) -> Response:
    session = await changer(request)
    try:
        await api_endpoints.cancel_promotion(name, request)
        session.notices.append(f"promotion on {name} cancelled: traffic back to the control")
    except ModelportError as exc:
        _failed(session, exc)
    return _back(f"{PREFIX}/endpoints/{name}")


@router.post("/try/{kind}/{name}")
async def try_it(kind: str, name: str, request: Request) -> Response:
    """Score ``name`` with the JSON typed in, through the router, with its primary key
    (read on the server: it never reaches the page)."""
    session = await changer(request)
    may_see_keys(session)
    body = str((await request.form()).get("body") or "")
    if kind == "endpoint":
        view = await api_endpoints.get_endpoint(name, request)
    else:
        view = await run_in_threadpool(api_services.get_service, name, request)
    credential = await _credential(kind, name, view, request)
    answer = await _score(request, view["scoringUri"], credential, body)
    return fragment(
        request, "_try_result.html", curl=views.curl_line(view["scoringUri"], body), **answer
    )


async def _credential(kind: str, name: str, view: dict[str, Any], request: Request) -> str | None:
    """What "try it" scores with: the primary key, or a token minted as for the admin
    (token auth), or nothing (auth off)."""
    if view.get("tokenAuthEnabled"):
        mint = api_tokens.endpoint_token if kind == "endpoint" else api_tokens.service_token
        return str((await mint(name, request))["accessToken"])
    if not view.get("authEnabled", True):
        return None
    if kind == "endpoint":
        keys = await run_in_threadpool(api_endpoints.endpoint_keys, name, request)
    else:
        keys = await run_in_threadpool(api_services.service_keys, name, request)
    return str(keys["primaryKey"])


async def _score(request: Request, uri: str, key: str | None, body: str) -> dict[str, Any]:
    tls = plane_of(request).tls
    verify: Any = str(tls.ca_bundle) if tls is not None and tls.ca_bundle else True
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=TRY_TIMEOUT_S, verify=verify) as client:
            response = await client.post(uri, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return {"status": None, "answer": f"no answer: {exc}", "ms": None}
    ms = (time.perf_counter() - started) * 1000
    return {"status": response.status_code, "answer": views.pretty(response.text), "ms": ms}
