"""Open Inference Protocol (v2) through the router, with Triton's own HTTP client."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelport import AksEndpoint, InferenceConfig, Model, Webservice, Workspace
from tests.conftest import ServerProcess
from tests.e2e.test_services import fixed, post, source
from tests.prom import total

SCHEMA = """
    import numpy as np
    from inference_schema.schema_decorators import input_schema, output_schema
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]], dtype=np.float32)))
    @input_schema("factor", StandardPythonParameterType(2.0))
    @output_schema(NumpyParameterType(np.array([6.0], dtype=np.float32)))
    def run(data, factor):
        assert isinstance(data, np.ndarray) and isinstance(factor, float)
        return (data.sum(axis=1) * factor).tolist()  # FP32, as declared: the runtime casts
"""

DECLARED = """
    OIP_INPUTS = [
        {"name": "x", "datatype": "INT64", "shape": [-1, 2]},
        {"name": "word", "datatype": "BYTES", "shape": [-1]},
    ]
    OIP_OUTPUTS = [
        {"name": "sum", "datatype": "INT64", "shape": [-1]},
        {"name": "upper", "datatype": "BYTES", "shape": [-1]},
    ]

    def init():
        pass

    def run(data):
        return {"sum": data["x"].sum(axis=1), "upper": [w.decode().upper() for w in data["word"]]}
"""


def script(tmp_path: Path, text: str, name: str) -> InferenceConfig:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(text))
    return InferenceConfig(entry_script="score.py", source_directory=folder)


def client(service: Webservice) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=urlsplit(service.scoring_uri).netloc)


def data_input(values: np.ndarray, binary: bool) -> list[triton.InferInput]:
    data = triton.InferInput("data", list(values.shape), "FP32")
    data.set_data_from_numpy(values, binary_data=binary)
    factor = triton.InferInput("factor", [1], "FP64")
    factor.set_data_from_numpy(np.array([3.0]), binary_data=binary)
    return [data, factor]


def test_schema_service_with_triton_client(
    server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = Model.deploy(ws, "oip-svc", [model], script(tmp_path, SCHEMA, "s"), fixed(1))
    service.wait_for_deployment()
    key = service.get_keys()[0]

    def auth() -> dict[str, str]:  # a new dict each call: infer() adds its own headers to it
        return {"Authorization": f"Bearer {key}"}

    tc = client(service)
    try:
        assert tc.is_server_live()  # open, as /healthz
        assert tc.is_server_ready()
        assert tc.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        assert tc.is_model_ready("oip-svc", headers=auth())
        meta = tc.get_model_metadata("oip-svc", headers=auth())
        assert meta["name"] == "oip-svc"
        assert meta["inputs"] == [
            {"name": "data", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "factor", "datatype": "FP64", "shape": [1]},
        ]
        assert meta["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]

        values = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
        for binary in (True, False):  # the client's default is the binary-data extension
            wanted = [triton.InferRequestedOutput("output-0", binary_data=binary)]
            result = tc.infer(
                "oip-svc",
                data_input(values, binary),
                outputs=wanted,
                headers=auth(),
                request_id="r1",
            )
            np.testing.assert_array_equal(result.as_numpy("output-0"), [18.0, 45.0])
            assert result.as_numpy("output-0").dtype == np.float32
            assert result.get_response()["id"] == "r1"
        result = tc.infer("oip-svc", data_input(values, True), headers=auth())  # all outputs
        np.testing.assert_array_equal(result.as_numpy("output-0"), [18.0, 45.0])

        with pytest.raises(InferenceServerException) as refused:
            tc.get_model_metadata("oip-svc")
        assert refused.value.status() == "401"
        with pytest.raises(InferenceServerException) as refused:
            tc.infer("oip-svc", data_input(values, False), headers={"Authorization": "Bearer no"})
        assert refused.value.status() == "401"
        with pytest.raises(InferenceServerException, match=r"shape \[2, 2\], expected \[-1, 3\]"):
            tc.infer("oip-svc", data_input(values[:, :2].copy(), False), headers=auth())
        with pytest.raises(InferenceServerException, match="model 'nope' not found") as unknown:
            tc.get_model_metadata("nope", headers=auth())
        assert unknown.value.status() == "404"
    finally:
        tc.close()
    # The v1 route is unchanged beside it.
    assert post(service, {"data": [[1, 1, 1]], "factor": 1.0}, key).json() == [3.0]
    # The service's counters: its 3 infers and 1 score; 2 refused credentials, 1 bad shape.
    config = json.loads((server.home / "config.json").read_text())
    admin = {"Authorization": f"Bearer {config['token']}"}
    text = httpx.get(f"{config['routerAdminUrls'][0]}/metrics", headers=admin).text
    assert total(text, REQUESTS, service="oip-svc", code="2xx") == 4
    assert total(text, REQUESTS, service="oip-svc", code="4xx") == 3


def test_declared_tensors_and_errors(ws: Workspace, model: Model, tmp_path: Path) -> None:
    svc = Model.deploy(
        ws, "oip-decl", [model], script(tmp_path, DECLARED, "d"), fixed(1, auth_enabled=False)
    )
    plain = Model.deploy(ws, "oip-plain", [model], source(tmp_path), fixed(1, auth_enabled=False))
    svc.wait_for_deployment()
    plain.wait_for_deployment()
    tc = client(svc)
    try:
        x = triton.InferInput("x", [2, 2], "INT64")
        x.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.int64))
        word = triton.InferInput("word", [2], "BYTES")
        word.set_data_from_numpy(np.array([b"ab", b"cd"], dtype=np.object_))
        wanted = [triton.InferRequestedOutput("upper"), triton.InferRequestedOutput("sum")]
        result = tc.infer("oip-decl", [x, word], outputs=wanted)
        assert result.as_numpy("upper").tolist() == [b"AB", b"CD"]
        np.testing.assert_array_equal(result.as_numpy("sum"), [3, 7])
        assert [o["name"] for o in result.get_response()["outputs"]] == ["upper", "sum"]

        with pytest.raises(InferenceServerException, match="unknown output 'nope'"):
            tc.infer("oip-decl", [x, word], outputs=[triton.InferRequestedOutput("nope")])
        with pytest.raises(InferenceServerException, match="declares no tensors") as bare:
            tc.get_model_metadata("oip-plain")
        assert bare.value.status() == "400"
    finally:
        tc.close()
    base = svc.scoring_uri.split("/api/")[0]
    wrong = httpx.post(
        f"{base}/v2/models/oip-decl/infer",
        json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
    )
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "input 'x' has datatype 'FP32', expected INT64"}
    assert httpx.get(f"{base}/v2/models/oip-decl/infer").status_code == 405
    assert httpx.get(f"{base}/v2/models/oip-decl/versions/1").json() == {
        "error": "service 'oip-decl' has no versions: use /v2/models/oip-decl"
    }


VERSIONED = """
    OIP_INPUTS = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
    OIP_OUTPUTS = [{"name": "version", "datatype": "BYTES", "shape": [1]}]

    def init():
        pass

    def run(data):
        return {"version": ["VERSION"], "twice": data["x"] * 2}
"""
FORWARDED = "modelport_router_forwarded_total"
REQUESTS = "modelport_router_requests_total"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}


def versioned(tmp_path: Path, version: str) -> InferenceConfig:
    return script(tmp_path, VERSIONED.replace("VERSION", version), version)


def test_an_endpoint_through_its_split_or_a_pinned_version(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = AksEndpoint.deploy_configuration(
        version_name="blue", autoscale_enabled=False, num_replicas=1
    )
    endpoint = Model.deploy(ws, "oip-ep", [model], versioned(tmp_path, "blue"), config)
    assert isinstance(endpoint, AksEndpoint)
    endpoint.create_version(
        "green", models=[model], inference_config=versioned(tmp_path, "green"), num_replicas=1
    )
    endpoint.wait_for_deployment()
    key = endpoint.get_keys()[0]
    base = endpoint.scoring_uri.split("/api/")[0] + "/v2/models/oip-ep"
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        default = c.post(f"{base}/infer", json=BODY)  # green takes no traffic: blue serves
        assert default.status_code == 200, default.text
        assert default.headers["azureml-model-deployment"] == "blue"
        outputs = {o["name"]: o for o in default.json()["outputs"]}
        assert outputs["version"]["data"] == ["blue"]
        assert outputs["twice"] == {
            "name": "twice",
            "datatype": "FP32",
            "shape": [2],
            "data": [2.0, 4.0],
        }
        pinned = c.post(f"{base}/versions/green/infer", json=BODY).json()
        assert pinned["model_name"] == "oip-ep" and pinned["model_version"] == "green"
        assert pinned["outputs"][0]["data"] == ["green"]
        meta = c.get(f"{base}/versions/green").json()
        assert meta["versions"] == ["green"] and meta["inputs"][0]["name"] == "x"
        assert c.get(f"{base}/ready").json() == {"name": "oip-ep", "ready": True}
        gone = c.post(f"{base}/versions/red/infer", json=BODY)
        assert gone.status_code == 404 and "has no version 'red'" in gone.json()["error"]
    refused = httpx.post(f"{base}/infer", json=BODY, headers={"Authorization": "Bearer no"})
    assert refused.status_code == 401 and isinstance(refused.json()["error"], str)


def test_a_router_worker_without_slots_forwards_infer(model: Model, tmp_path: Path) -> None:
    """Two router workers, one replica: a worker holding none of its slots hands the
    request to the one that does, by the same path as /score."""
    server = ServerProcess(tmp_path / "home2", args=("--workers", "2"))
    try:
        with Workspace.from_config(server.home) as ws:
            folder = tmp_path / "m"
            folder.mkdir()
            Model.register(ws, folder, "scaler")
            service = Model.deploy(
                ws,
                "oip-workers",
                [Model(ws, "scaler")],
                versioned(tmp_path, "only"),
                fixed(1, auth_enabled=False),
            )
            service.wait_for_deployment()
            url = service.scoring_uri.split("/api/")[0] + "/v2/models/oip-workers"
            limits = httpx.Limits(max_keepalive_connections=0)  # a connection, a worker each
            with httpx.Client(timeout=30, limits=limits) as c:
                answers = [c.post(f"{url}/infer", json=BODY) for _ in range(12)]
                metadata = [c.get(url) for _ in range(6)]
            assert [a.status_code for a in answers + metadata] == [200] * 18
            assert {a.json()["outputs"][0]["data"][0] for a in answers} == {"only"}
            config = json.loads((server.home / "config.json").read_text())
            admin = {"Authorization": f"Bearer {config['token']}"}
            forwarded = [
                total(httpx.get(f"{u}/metrics", headers=admin).text, FORWARDED)
                for u in config["routerAdminUrls"]
            ]
            assert sum(forwarded) > 0  # the forwarding worker took some of them
            scored = [
                total(httpx.get(f"{u}/metrics", headers=admin).text, REQUESTS, code="2xx")
                for u in config["routerAdminUrls"]
            ]
            assert sum(scored) == 12  # infer counts as scoring does; metadata takes no slot
    finally:
        server.stop()
