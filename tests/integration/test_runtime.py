"""The replica runtime (contract section 5) as a real process on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for
from tests.integration.replicas import Replica, exit_code, running

PLAIN = """
    import json, os, time
    from modelport import Model

    def init():
        global scale
        scale = json.load(open(Model.get_model_path("lin") + "/w.json"))["scale"]

    def run(request_headers, data):  # the input is the first parameter but request_headers
        body = json.loads(data)
        if body.get("fail"):
            raise RuntimeError("asked to fail")
        if body.get("spin"):
            while True:
                pass
        return {"y": [v * scale for v in body["x"]], "agent": request_headers.get("User-Agent")}
"""

SCHEMA = """
    import numpy as np
    from inference_schema.schema_decorators import input_schema, output_schema
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @input_schema("factor", StandardPythonParameterType(2.0))
    @output_schema(StandardPythonParameterType([3.0]))
    def run(data, factor):
        return (data.sum(axis=1) * factor).tolist()
"""

RAW = """
    from modelport.runtime.api import AMLResponse, rawhttp

    def init():
        pass

    @rawhttp
    def run(request):
        if request.method == "GET":
            return AMLResponse({"args": request.args.get("q")}, 200, json_str=True)
        return AMLResponse(request.get_data(as_text=True).upper(), 201, {"X-Custom": "yes"})
"""

INIT_FAILS = """
    def init():
        raise ValueError("cannot load the model")

    def run(data):
        return data
"""


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Replica]:
    with running(tmp_path, PLAIN, timeout_ms=1500) as replica:
        yield replica


def test_liveness_and_plain_scoring(plain: Replica) -> None:
    live = plain.client.get("/")
    assert live.text == "Healthy"
    r = plain.client.post("/score", content=b'{"x": [1, 2]}', headers={"User-Agent": "t/1"})
    assert r.status_code == 200 and r.json() == {"y": [3, 6], "agent": "t/1"}
    assert r.headers["content-type"] == "application/json"
    assert float(r.headers["x-ms-run-fn-exec-ms"]) >= 0
    assert r.headers["x-ms-server-version"].startswith("modelport-runtime/")


def test_a_replica_takes_heads_the_router_let_through_plus_its_own(plain: Replica) -> None:
    """The router takes 16 KiB of head and 100 headers, then adds its own: the replica
    leaves room for those, and refuses only beyond."""
    near = {"x-big": "a" * 16000} | {f"x-{i}": "v" for i in range(110)}
    r = plain.client.post("/score", content=b'{"x": [1]}', headers=near)
    assert r.status_code == 200 and r.json()["y"] == [3]
    over = plain.client.post("/score", content=b"{}", headers={"x-big": "a" * 40000})
    assert over.status_code == 431


def test_request_ids_are_echoed_and_bounded(plain: Replica) -> None:
    r = plain.client.post(
        "/score",
        content=b'{"x": []}',
        headers={"x-request-id": "abc-1", "x-ms-client-request-id": "c-9"},
    )
    assert r.headers["x-request-id"] == "abc-1"
    assert r.headers["x-ms-client-request-id"] == "c-9"
    assert r.headers["x-ms-request-id"] == "c-9"
    assert plain.client.post("/score", headers={"x-request-id": "x" * 101}).status_code == 431
    generated = plain.client.get("/").headers["x-request-id"]
    assert len(generated) == 36


def test_run_failure_and_methods(plain: Replica) -> None:
    r = plain.client.post("/score", content=b'{"fail": true}')
    assert r.status_code == 500
    assert r.json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert r.headers["x-ms-run-function-failed"] == "True"
    assert plain.client.post("/score", content=b'{"x": [1]}').status_code == 200
    assert plain.client.options("/score").status_code == 200
    assert plain.client.put("/score").status_code == 405
    missing = plain.client.get("/nothing")
    assert missing.status_code == 404 and "message" in missing.json()
    assert "RuntimeError: asked to fail" in plain.log_text()


def test_scoring_timeout_interrupts_run(plain: Replica) -> None:
    r = plain.client.post("/score", content=b'{"spin": true}')
    assert r.status_code == 500 and r.json() == {"message": "Scoring timeout after 1500 ms"}
    assert r.headers["x-ms-run-function-failed"] == "True"
    # the spinning run() was interrupted, so the replica scores again at once
    assert plain.client.post("/score", content=b'{"x": [2]}').json()["y"] == [6]


def test_get_query_becomes_a_json_string(plain: Replica) -> None:
    r = plain.client.get("/score", params={"x": "[4]"})
    assert r.status_code == 200 and r.json()["y"] == [12]


def test_schema_decorated_run(tmp_path: Path) -> None:
    with running(tmp_path, SCHEMA) as replica:
        ok = replica.client.post("/score", json={"data": [[1.0, 2.0], [3.0, 4.0]], "factor": 10})
        assert ok.status_code == 200 and ok.json() == [30.0, 70.0]
        no_type = replica.client.post("/score", content=b'{"data": [[1, 2]]}')
        assert no_type.status_code == 415
        not_dict = replica.client.post("/score", json=[1, 2])
        assert not_dict.status_code == 400 and "JSON dictionary" in not_dict.json()["message"]
        bad_json = replica.client.post(
            "/score", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400
        missing = replica.client.post("/score", json={"data": [[1.0, 2.0]]})
        assert missing.status_code == 400
        assert missing.json()["message"] == "A value is not provided for the 'factor' parameter."
        swagger = replica.client.get("/swagger.json").json()
        props = swagger["definitions"]["ServiceInput"]["properties"]
        assert set(props) == {"data", "factor"} and swagger["swagger"] == "2.0"
        v3 = replica.client.get("/swagger.json", params={"version": "3"}).json()
        assert v3["openapi"].startswith("3.0") and "ServiceInput" in v3["components"]["schemas"]
        assert replica.client.get("/swagger.json", params={"version": "9"}).status_code == 404


def test_rawhttp_run(tmp_path: Path) -> None:
    with running(tmp_path, RAW) as replica:
        posted = replica.client.post("/score", content=b"shout")
        assert posted.status_code == 201 and posted.text == "SHOUT"
        assert posted.headers["x-custom"] == "yes"
        got = replica.client.get("/score", params={"q": "hello"})
        assert got.json() == {"args": "hello"}


def test_a_run_without_an_input_parameter_is_refused_at_load(tmp_path: Path) -> None:
    script = """
        def init():
            pass

        def run(request_headers):
            return "no input"
    """
    code, log = exit_code(tmp_path, script)
    assert code == 3
    assert "ScriptError: run() needs to accept an argument for input data." in log


def test_init_failure_exits_with_code_3(tmp_path: Path) -> None:
    code, log = exit_code(tmp_path, INIT_FAILS)
    assert code == 3
    assert "ValueError: cannot load the model" in log


NAPS = """
    import os, time
    from pathlib import Path

    def init():
        pass

    def run(data):
        Path(os.environ["AML_APP_ROOT"], "started").touch()
        time.sleep(float(data))
        return "rested"
"""


def test_sigterm_lets_the_request_in_progress_finish(tmp_path: Path) -> None:
    with running(tmp_path, NAPS) as replica:
        result: dict[str, httpx.Response] = {}
        call = threading.Thread(
            target=lambda: result.update(r=replica.client.post("/score", content=b"1.0"))
        )
        call.start()
        wait_for(lambda: (tmp_path / "started").exists(), what="run() to start")
        replica.proc.terminate()
        call.join(timeout=30)
        assert result["r"].status_code == 200 and result["r"].json() == "rested"
        assert replica.proc.wait(timeout=30) == 0


def test_a_replica_handed_a_unix_socket_serves_there_and_still_wants_its_key(
    tmp_path: Path,
) -> None:
    key = "k" * 32
    env = {"MODELPORT_REPLICA_KEY": key}
    with running(tmp_path, PLAIN, env=env, unix=True) as replica:
        transport = httpx.HTTPTransport(uds=str(replica.unix_path))
        with httpx.Client(transport=transport, base_url="http://replica", timeout=30) as client:
            refused = client.post("/score", json={"x": [1]})
            admitted = client.post(
                "/score", json={"x": [1]}, headers={"x-modelport-replica-key": key}
            )
        by_tcp = replica.client.post(
            "/score", json={"x": [2]}, headers={"x-modelport-replica-key": key}
        )
    assert refused.status_code == 403
    assert admitted.status_code == 200 and admitted.json()["y"] == [3]
    assert by_tcp.status_code == 200 and by_tcp.json()["y"] == [6]


BATCHED = """
    import json
    from modelport import batched

    def init():
        pass

    @batched(max_batch_size=4, max_latency_ms=1000)
    def run(inputs):
        bodies = [json.loads(i) for i in inputs]
        return [
            ValueError("bad input") if b.get("fail") else {"x": b["x"], "batch": len(inputs)}
            for b in bodies
        ]
"""


def test_a_batched_run_gets_concurrent_requests_together_and_fails_one_input_alone(
    tmp_path: Path,
) -> None:
    with running(tmp_path, BATCHED) as replica:
        barrier = threading.Barrier(4)
        answers: dict[int, httpx.Response] = {}

        def call(i: int) -> None:
            with httpx.Client(base_url=replica.url, timeout=30) as client:
                barrier.wait()
                answers[i] = client.post("/score", json={"x": i, "fail": i == 2})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lone = replica.client.post("/score", json={"x": 9})
    assert answers[2].status_code == 500
    assert answers[2].headers["x-ms-run-function-failed"] == "True"
    good = [answers[i].json() for i in (0, 1, 3)]
    assert [g["x"] for g in good] == [0, 1, 3]
    # Four at once, within the latency bound: one call of run() for all of them.
    assert all(g["batch"] == 4 for g in good)
    assert lone.status_code == 200 and lone.json() == {"x": 9, "batch": 1}
