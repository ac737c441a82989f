"""The replica's Open Inference Protocol routes, on a real replica process."""

from __future__ import annotations

from pathlib import Path

from tests.integration.replicas import running
from tests.integration.test_runtime import RAW

RAISES = """
    OIP_INPUTS = [{"name": "x", "datatype": "INT32", "shape": [-1]}]

    def init():
        pass

    def run(data):
        if data["x"].sum() > 10:
            raise ValueError("too big")
        return data["x"] + 1
"""


def body(*values: int) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "INT32", "shape": [len(values)], "data": values}]}


def test_run_raising_and_bad_bodies_get_the_protocols_errors(tmp_path: Path) -> None:
    with running(tmp_path, RAISES) as replica:
        ok = replica.client.post("/v2/models/m/infer", json=body(1, 2))
        assert ok.json()["outputs"] == [
            {"name": "output-0", "datatype": "INT32", "shape": [2], "data": [2, 3]}
        ]
        failed = replica.client.post("/v2/models/m/infer", json=body(20))
        assert failed.status_code == 500 and failed.headers["x-ms-run-function-failed"] == "True"
        assert "unexpected error occurred in scoring script" in failed.json()["error"]
        junk = replica.client.post("/v2/models/m/infer", content=b"{not json")
        assert junk.status_code == 400
        assert junk.json() == {"error": "the request body is no JSON inference request"}
        cut = replica.client.post(
            "/v2/models/m/infer",
            content=b"{}",
            headers={"Inference-Header-Content-Length": "99"},
        )
        assert cut.status_code == 400 and "does not fit the body" in cut.json()["error"]
        # the replica still serves after each
        assert replica.client.post("/v2/models/m/infer", json=body(3)).status_code == 200


def test_rawhttp_scripts_are_refused_with_a_reason(tmp_path: Path) -> None:
    with running(tmp_path, RAW) as replica:
        answer = replica.client.get("/v2/models/m")
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("@rawhttp scripts are not served")
        assert replica.client.post("/score", content=b"hi").status_code == 201
