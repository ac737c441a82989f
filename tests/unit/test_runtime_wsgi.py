"""AMLRequest, AMLResponse and sending werkzeug responses, as v1's scoring server has them."""

from __future__ import annotations

import pytest
from werkzeug.test import encode_multipart
from werkzeug.wrappers import Response

from modelport.httpserver import Request
from modelport.runtime.api import AMLRequest as ApiRequest
from modelport.runtime.api import AMLResponse as ApiResponse
from modelport.runtime.wsgi import AMLRequest, AMLResponse, environ, request_for, to_response

SERVER = ("127.0.0.1", 5001)


def parsed(
    method: str = "POST",
    path: str = "/score",
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> Request:
    return Request(method, path, query, headers or [], body, client=("10.0.0.9", 40000))


def headers_of(response: Response) -> list[tuple[bytes, bytes]]:
    return to_response(response).headers


def test_the_api_module_gives_the_werkzeug_classes() -> None:
    assert ApiRequest is AMLRequest and ApiResponse is AMLResponse


def test_aml_response_body_and_content_type_as_v1() -> None:
    text = AMLResponse("hi", 201)
    assert text.status_code == 201 and text.get_data() == b"hi"
    assert text.headers["Content-Type"] == "text/html; charset=utf-8"  # Flask's default
    assert text.headers["x-ms-run-function-failed"] == "False"
    as_json = AMLResponse({"a": [1]}, 200, json_str=True)
    assert as_json.get_data() == b'{"a": [1]}'
    assert as_json.headers["Content-Type"] == "application/json"
    empty = AMLResponse(None, 404)
    assert empty.get_data() == b"{}" and empty.headers["Content-Type"] == "application/json"
    failed = AMLResponse("no", 400, run_function_failed=True)
    assert failed.headers["x-ms-run-function-failed"] == "True"


def test_aml_response_headers_split_at_commas_and_replace_the_content_type() -> None:
    response = AMLResponse(
        b"\x89PNG", 200, {"content-type": "image/png", "X-Multi": "a, b", "X-One": "c"}
    )
    assert response.headers.getlist("X-Multi") == ["a", "b"]
    assert response.headers.getlist("Content-Type") == ["image/png"]
    sent = headers_of(response)
    assert (b"content-type", b"image/png") in [(k.lower(), v) for k, v in sent]
    assert sum(1 for k, _ in sent if k.lower() == b"content-type") == 1


def test_sending_a_response_leaves_framing_to_the_server() -> None:
    sent = to_response(Response(b"abc", status=202, headers={"Connection": "close"}))
    assert sent.status == 202 and sent.body == b"abc"
    names = [name.lower() for name, _ in sent.headers]
    assert b"content-length" not in names and b"connection" not in names


def test_a_failing_response_says_so_once() -> None:
    sent = to_response(AMLResponse("down", 503))
    flags = [v for k, v in sent.headers if k.lower() == b"x-ms-run-function-failed"]
    assert flags == [b"True"]
    assert not any(k.lower() == b"x-ms-run-function-failed" for k, _ in headers_of(Response()))


def test_a_streamed_body_is_read_whole() -> None:
    sent = to_response(Response(iter([b"a", "b", b"c"])))
    assert sent.body == b"abc"


@pytest.mark.parametrize("status", [99, 600, 1000])
def test_a_status_http_has_not_is_refused(status: int) -> None:
    with pytest.raises(ValueError, match=f"status {status} is not an HTTP status code"):
        to_response(Response(b"", status=status))


def test_the_environ_of_a_parsed_request() -> None:
    env = environ(
        parsed(
            path="/score%20x",
            query="a=1",
            headers=[
                (b"content-type", b"text/plain"),
                (b"content-length", b"999"),
                (b"transfer-encoding", b"chunked"),
                (b"x-many", b"1"),
                (b"x-many", b"2"),
                (b"cookie", b"a=1"),
                (b"cookie", b"b=2"),
                (b"host", b"example.test:80"),
            ],
            body=b"hello",
        ),
        SERVER,
        multithread=True,
    )
    assert env["PATH_INFO"] == "/score x" and env["QUERY_STRING"] == "a=1"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert "HTTP_TRANSFER_ENCODING" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_MANY"] == "1,2" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["REMOTE_ADDR"] == "10.0.0.9" and env["wsgi.multithread"] is True
    assert env["wsgi.input"].read() == b"hello"


def test_a_request_reads_forms_files_json_and_the_query() -> None:
    stream, length, boundary = _multipart()
    request = request_for(
        parsed(
            query="q=1&q=2",
            headers=[(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
            body=stream,
        ),
        SERVER,
        multithread=False,
    )
    assert isinstance(request, AMLRequest)
    assert request.form["name"] == "value" and request.files["image"].read() == b"\x89PNG"
    assert request.args.getlist("q") == ["1", "2"] and request.full_path == "/score?q=1&q=2"
    assert request.url == "http://127.0.0.1:5001/score?q=1&q=2"
    assert request.remote_addr == "10.0.0.9" and length == len(stream)
    as_json = request_for(
        parsed(headers=[(b"content-type", b"application/json")], body=b'{"x": 1}'),
        SERVER,
        multithread=False,
    )
    assert as_json.get_json() == {"x": 1} and as_json.get_data(as_text=True) == '{"x": 1}'
    assert as_json.headers["Content-Type"] == "application/json"


def _multipart() -> tuple[bytes, int, str]:
    from io import BytesIO

    from werkzeug.datastructures import FileStorage

    boundary, body = encode_multipart(
        {"name": "value", "image": FileStorage(BytesIO(b"\x89PNG"), filename="a.png")}
    )
    return body, len(body), boundary
