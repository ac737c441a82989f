"""A replica always answers: input it cannot read, values it cannot send (issue 8, section 6)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.replicas import Replica, running

DEEP = b"[" * 100_000 + b"]" * 100_000
RUN_FAILED = {
    "message": "An unexpected error occurred in scoring script. Check the logs for more info."
}
INTERNAL = {"message": "An unexpected internal error occurred. Check the logs for more info."}

PLAIN = """
    import json

    def init():
        pass

    def run(data):
        return len(json.loads(data))
"""

SCHEMA = """
    from inference_schema.schema_decorators import input_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @input_schema("data", StandardPythonParameterType([1]))
    def run(data):
        return len(data)
"""

RAW = """
    from modelport.runtime.api import rawhttp

    def init():
        pass

    @rawhttp
    def run(request):
        return len(request.get_json())
"""

RETURNS = """
    import json
    from modelport.runtime.api import AMLResponse

    def init():
        pass

    def run(data):
        kind = json.loads(data)["kind"]
        if kind == "object":
            return object()
        if kind == "deep":
            value = []
            for _ in range(100_000):
                value = [value]
            return value
        if kind == "circular":
            value = []
            value.append(value)
            return {"loop": value}
        if kind == "none":
            return None
        if kind == "status":
            return AMLResponse("odd", 1000)
        if kind == "header":
            return AMLResponse("fine", 200, {"X-Name": "\u0394elta"})
        return {"ok": True}
"""


def assert_still_answers(replica: Replica, body: bytes, **kw: object) -> None:
    """The replica is free again: the next request is scored at once."""
    r = replica.client.post("/score", content=body, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text


def test_deep_json_to_a_plain_script_is_run_s_failure(tmp_path: Path) -> None:
    with running(tmp_path, PLAIN) as replica:
        r = replica.client.post("/score", content=DEEP)
        assert r.status_code == 500 and r.json() == RUN_FAILED
        assert r.headers["x-ms-run-function-failed"] == "True"
        assert_still_answers(replica, b"[1, 2]")
        deep_query = replica.client.get("/score?x=" + "[" * 10_000 + "]" * 10_000)
        assert deep_query.status_code == 400
        assert deep_query.json() == {
            "message": "query parameter 'x' is nested too deeply to be read "
            "(Python's recursion limit)"
        }
        assert "RecursionError" in replica.log_text()


def test_deep_json_to_a_schema_script_is_a_400(tmp_path: Path) -> None:
    json_type = {"content-type": "application/json"}
    with running(tmp_path, SCHEMA) as replica:
        r = replica.client.post("/score", content=b'{"data": ' + DEEP + b"}", headers=json_type)
        assert r.status_code == 400
        assert r.json() == {
            "message": "POST body is nested too deeply to be read (Python's recursion limit)"
        }
        assert_still_answers(replica, b'{"data": [1, 2]}', headers=json_type)
        deep_query = replica.client.get("/score?data=" + "[" * 10_000 + "]" * 10_000)
        assert deep_query.status_code == 400
        log = replica.log_text()
    assert "POST /score answered 400: POST body is nested too deeply" in log
    assert "GET /score answered 400: query parameter 'data' is nested too deeply" in log


def test_deep_json_to_a_rawhttp_script_is_run_s_failure(tmp_path: Path) -> None:
    json_type = {"content-type": "application/json"}
    with running(tmp_path, RAW) as replica:
        r = replica.client.post("/score", content=DEEP, headers=json_type)
        assert r.status_code == 500 and r.json() == RUN_FAILED
        assert_still_answers(replica, b"[1]", headers=json_type)


def test_values_run_returns_that_cannot_be_sent(tmp_path: Path) -> None:
    with running(tmp_path, RETURNS) as replica:

        def score(kind: str) -> httpx.Response:
            return replica.client.post("/score", json={"kind": kind})

        for kind in ("object", "deep", "circular", "status", "header"):
            r = score(kind)
            assert (r.status_code, r.json()) == (500, INTERNAL), kind
            assert "x-ms-run-function-failed" not in r.headers, kind
            assert score("fine").json() == {"ok": True}
        none = score("none")
        assert none.status_code == 200 and none.content == b"{}"  # v1 sends {} for None
        log = replica.log_text()
    assert "run() returned a value of type object, which cannot be sent (TypeError" in log
    assert "run() returned a value of type list, which cannot be sent (RecursionError" in log
    assert (
        "run() returned a value of type dict, which cannot be sent (ValueError: Circular reference"
        in log
    )
    assert "(ValueError: status 1000 is not an HTTP status code)" in log
    assert "(UnicodeEncodeError" in log
