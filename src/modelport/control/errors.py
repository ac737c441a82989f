"""Every management API error leaves as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from modelport.errors import InvalidInputError, ModelportError, NotFoundError
from modelport.store.faults import os_fault

log = logging.getLogger("modelport.control")

_STATUS_CODES = {404: NotFoundError.code, 405: "method_not_allowed", 400: InvalidInputError.code}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _modelport_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelportError)
    if exc.http_status >= 500:
        log.error("request failed: %s", exc.message)
    return JSONResponse(exc.to_body(), status_code=exc.http_status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        lines.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return error_response(400, InvalidInputError.code, "; ".join(lines) or "invalid request")


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    """A file the server could not read or write: 503 (507 for no space), naming it."""
    assert isinstance(exc, OSError)
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    if exc.filename:
        fault = os_fault(exc, "read or write", exc.filename)
    else:
        fault = os_fault(exc, "complete the request")
    return JSONResponse(fault.to_body(), status_code=fault.http_status)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, ModelportError.code, "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelportError, _modelport_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unexpected)
