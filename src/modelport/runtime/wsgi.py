"""``@rawhttp``'s request and response: werkzeug's own classes, as v1's Flask ones are.

v1 hands a ``@rawhttp`` ``run()`` the Flask request of the call (werkzeug's request
underneath), and sends a returned Flask/werkzeug response as it is.  Here the
parsed HTTP request becomes a WSGI environ and an :class:`AMLRequest` over it, so
``files``, ``form``, ``args``, ``stream``, ``get_data()``, ``get_json()`` and the rest
behave as werkzeug makes them; :func:`to_response` turns any werkzeug response back
into bytes to send.  Only scripts that use these load this module (and werkzeug):
undecorated and ``@input_schema`` replicas never do.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from modelport import httpserver

try:
    from werkzeug.wrappers import Request, Response
except ImportError as exc:  # an environment built before werkzeug was a runtime package
    raise ImportError(
        "@rawhttp scripts and AMLRequest/AMLResponse need werkzeug in the service's "
        "environment; modelport installs it into the environments it builds, so rebuild "
        "this one (or add werkzeug>=2.0 to its pip packages)"
    ) from exc

# Framing is the HTTP server's business: it sets its own content-length.
_NOT_FORWARDED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_RUN_FAILED = "x-ms-run-function-failed"


class AMLRequest(Request):
    """v1's ``AMLRequest``: werkzeug's request (what Flask's subclasses) for one call."""


class AMLResponse(Response):
    """v1's ``AMLResponse(message, status_code, response_headers, json_str, run_function_failed)``.

    As in azureml-inference-server-http's ``api/aml_response.py``: ``json_str`` sends
    ``json.dumps(message)`` as ``application/json``; otherwise ``message`` is the body
    (``text/html`` by default, as for any Flask response); ``None`` sends ``{}``.
    ``x-ms-run-function-failed`` carries ``run_function_failed`` ("True"/"False"), and
    each header value is split at commas into repeated headers.  One difference: a
    ``Content-Type`` in ``response_headers``, in any case, replaces the default one,
    where v1 kept both unless the key was spelled ``Content-Type`` and ``json_str``
    was false (two content types in one response).
    """

    default_mimetype = "text/html"

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers = dict(response_headers or {})
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
        if any(name.lower() == "content-type" for name in headers):
            del self.headers["Content-Type"]
        self.headers[_RUN_FAILED] = str(run_function_failed)
        for name, value in headers.items():
            for part in value.split(","):
                self.headers.add_header(name, part.strip())


def environ(
    request: httpserver.Request, server: tuple[str, int], multithread: bool
) -> dict[str, Any]:
    """The WSGI environ of a parsed request whose body has been read whole."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(request.path).decode("latin-1"),
        "QUERY_STRING": request.query,
        "CONTENT_LENGTH": str(len(request.body)),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if request.client is not None:
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = request.client[0], str(request.client[1])
    for raw_name, raw_value in request.headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_TYPE":
            env[name] = value
        elif name not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):  # the body is read whole
            key = "HTTP_" + name
            if key in env:
                value = env[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
            env[key] = value
    return env


def request_for(
    request: httpserver.Request, server: tuple[str, int], multithread: bool
) -> AMLRequest:
    return AMLRequest(environ(request, server, multithread))


def to_response(response: Response) -> httpserver.Response:
    """The bytes of a werkzeug (or Flask) response; raises what cannot be sent."""
    status = response.status_code
    if not 100 <= status <= 599:
        raise ValueError(f"status {status} is not an HTTP status code")
    try:
        body = response.get_data()  # a streamed body is read whole: the server frames it
    finally:
        response.close()
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower() not in _NOT_FORWARDED
        and not (status >= 500 and name.lower() == _RUN_FAILED)
    ]
    if status >= 500:  # as v1: a failing response says so, whatever run() set
        headers.append((_RUN_FAILED.encode(), b"True"))
    return httpserver.Response(status, body, headers)
