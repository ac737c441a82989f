"""v1 scripts run unedited in a real replica: the v1 import paths, raw requests, data collection."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.integration.replicas import exit_code, running

# The v1 docs' binary-data sample (how-to-deploy-advanced-entry-script), as published
# (but for the trailing spaces of two blank lines).
BINARY_IMAGE = """\
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from PIL import Image
import json


def init():
    print("This is init()")


@rawhttp
def run(request):
    print("This is run()")

    if request.method == 'GET':
        # For this example, just return the URL for GETs.
        respBody = str.encode(request.full_path)
        return AMLResponse(respBody, 200)
    elif request.method == 'POST':
        file_bytes = request.files["image"]
        image = Image.open(file_bytes).convert('RGB')
        # For a real-world solution, you would load the data from reqBody
        # and send it to the model. Then return the response.

        # For demonstration purposes, this example just returns the size of the image as the response.
        return AMLResponse(json.dumps(image.size), 200)
    else:
        return AMLResponse("bad request", 500)
"""

# The same page's CORS sample, as published.
CORS = """\
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    print("This is init()")

@rawhttp
def run(request):
    print("This is run()")
    print("Request: [{0}]".format(request))
    if request.method == 'GET':
        # For this example, just return the URL for GET.
        # For a real-world solution, you would load the data from URL params or headers
        # and send it to the model. Then return the response.
        respBody = str.encode(request.full_path)
        resp = AMLResponse(respBody, 200)
        resp.headers["Allow"] = "OPTIONS, GET, POST"
        resp.headers["Access-Control-Allow-Methods"] = "OPTIONS, GET, POST"
        resp.headers['Access-Control-Allow-Origin'] = "http://www.example.com"
        resp.headers['Access-Control-Allow-Headers'] = "*"
        return resp
    elif request.method == 'POST':
        reqBody = request.get_data(False)
        # For a real-world solution, you would load the data from reqBody
        # and send it to the model. Then return the response.
        resp = AMLResponse(reqBody, 200)
        resp.headers["Allow"] = "OPTIONS, GET, POST"
        resp.headers["Access-Control-Allow-Methods"] = "OPTIONS, GET, POST"
        resp.headers['Access-Control-Allow-Origin'] = "http://www.example.com"
        resp.headers['Access-Control-Allow-Headers'] = "*"
        return resp
    elif request.method == 'OPTIONS':
        resp = AMLResponse("", 200)
        resp.headers["Allow"] = "OPTIONS, GET, POST"
        resp.headers["Access-Control-Allow-Methods"] = "OPTIONS, GET, POST"
        resp.headers['Access-Control-Allow-Origin'] = "http://www.example.com"
        resp.headers['Access-Control-Allow-Headers'] = "*"
        return resp
    else:
        return AMLResponse("bad request", 400)
"""

V1_SCRIPT = """
    import json
    import os
    from azureml.core.model import Model
    from azureml.core import Model as CoreModel
    from azureml.monitoring import ModelDataCollector
    from azureml_inference_server_http.api.aml_response import AMLResponse

    def init():
        global scale, inputs_dc, prediction_dc
        path = Model.get_model_path(model_name="lin")
        assert path == CoreModel.get_model_path("lin", version=1, _workspace=None)
        scale = json.load(open(os.path.join(path, "w.json")))["scale"]
        inputs_dc = ModelDataCollector("lin", designation="inputs", feature_names=["x"])
        prediction_dc = ModelDataCollector("lin", designation="predictions", feature_names=["y"])

    def run(raw_data):
        body = json.loads(raw_data)
        if body.get("workspace"):
            try:
                from azureml.core import Workspace
            except ImportError as exc:
                return {"import_error": str(exc)}
        data = body["data"]
        correlations = inputs_dc.collect(data)
        result = [v * scale for v in data]
        prediction_dc.collect(prediction_dc.add_correlations(result, correlations))
        if body.get("as_response"):
            return AMLResponse(result, 200, json_str=True)
        return {"result": result, "correlations": correlations}
"""


def test_a_v1_script_runs_unedited(tmp_path: Path) -> None:
    with running(tmp_path, V1_SCRIPT) as replica:
        r = replica.client.post("/score", json={"data": [1, 2]})
        assert r.status_code == 200 and r.json() == {"result": [3, 6], "correlations": None}
        r = replica.client.post("/score", json={"data": [2], "as_response": True})
        assert r.json() == [6] and r.headers["content-type"] == "application/json"
        assert r.headers["x-ms-run-function-failed"] == "False"  # as v1's AMLResponse sets it
        missing = replica.client.post("/score", json={"workspace": True}).json()["import_error"]
        assert missing.startswith("azureml.core.Workspace is not available inside a modelport")
        log = replica.log_text()
    assert (
        "v1 modules provided: azureml.core.model.Model, azureml.contrib.services.aml_request/"
        "aml_response, azureml.monitoring.ModelDataCollector; "
        "azureml_inference_server_http.api.aml_request/aml_response"
    ) in log
    assert log.count("v1 modules provided") == 1
    assert "Data collection is not enabled" in log


def test_data_collection_on_is_refused_clearly(tmp_path: Path) -> None:
    # On, with no place for the data (neither MODELPORT_MODELDATA_DIR nor the ingest URL).
    code, log = exit_code(tmp_path, V1_SCRIPT, env={"AML_MODEL_DC_STORAGE_ENABLED": "true"})
    assert code == 3
    assert "DataCollectionUnavailable: this service has data collection on" in log


def test_a_real_package_wins_over_the_stand_in(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "model.py").write_text(
        "class Model:\n    @staticmethod\n    def get_model_path(name):\n        return 'real'\n"
    )
    script = """
        from azureml.core.model import Model
        from azureml_inference_server_http.api.aml_response import AMLResponse

        def init():
            pass

        def run(data):
            return [Model.get_model_path("lin"), AMLResponse.__module__]
    """
    app = tmp_path / "app"
    app.mkdir()
    with running(app, script, env={"PYTHONPATH": str(site)}) as replica:
        assert replica.client.post("/score", content=b"x").json() == [
            "real",
            "modelport.runtime.wsgi",
        ]
        log = replica.log_text()
    assert (
        "v1 modules provided: azureml_inference_server_http.api.aml_request/aml_response; "
        "the environment's own azureml used instead"
    ) in log


def test_the_v1_docs_binary_image_sample(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGB", (7, 5), "red").save(png, "PNG")
    with running(tmp_path, BINARY_IMAGE) as replica:
        # the page's client: requests.post(uri, files={'image': open(image_path, 'rb').read()})
        posted = replica.client.post("/score", files={"image": png.getvalue()})
        assert posted.status_code == 200, replica.log_text()
        assert posted.json() == [7, 5]
        assert posted.headers["content-type"] == "text/html; charset=utf-8"
        got = replica.client.get("/score", params={"size": "small"})
        assert got.status_code == 200 and got.text == "/score?size=small"
        assert "This is run()" in replica.log_text()


def test_the_v1_docs_cors_sample_gets_options_too(tmp_path: Path) -> None:
    with running(tmp_path, CORS) as replica:
        preflight = replica.client.options("/score")
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://www.example.com"
        echoed = replica.client.post("/score", content=b"\x00binary\xff")
        assert echoed.content == b"\x00binary\xff"
        assert echoed.headers["allow"] == "OPTIONS, GET, POST"
        assert replica.client.put("/score").status_code == 405


RAW_DETAILS = """
    import json
    from azureml_inference_server_http.api.aml_request import rawhttp
    from werkzeug.wrappers import Response

    def init():
        pass

    @rawhttp
    def run(request):
        if request.args.get("teapot"):
            return Response("short and stout", status=418, headers={"X-Pot": "1"})
        if request.args.get("down"):
            return Response("overloaded", status=503)
        if request.args.get("json"):
            return request.get_json()  # werkzeug raises for a body that is not JSON
        return {
            "form": request.form.to_dict(),
            "args": request.args.to_dict(flat=False),
            "path": request.path,
            "full_path": request.full_path,
            "url": request.url,
            "method": request.method,
            "content_type": request.content_type,
            "length": len(request.stream.read()),
            "header": request.headers.get("X-Thing"),
            "remote": request.remote_addr,
            "cookies": request.cookies.to_dict(),
        }
"""


def test_raw_requests_are_werkzeug_requests(tmp_path: Path) -> None:
    with running(tmp_path, RAW_DETAILS) as replica:
        chunks = iter([b"a=1&b=", b"two"])  # a body without a length: sent chunked
        r = replica.client.post(
            "/score?x=1&x=2",
            content=chunks,
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-thing": "yes",
                "cookie": "k=v",
            },
        )
        body = r.json()
        assert body["form"] == {"a": "1", "b": "two"}
        assert body["args"] == {"x": ["1", "2"]}
        assert body["path"] == "/score" and body["full_path"] == "/score?x=1&x=2"
        assert body["url"] == f"{replica.url}/score?x=1&x=2"
        assert body["method"] == "POST" and body["header"] == "yes"
        assert body["content_type"] == "application/x-www-form-urlencoded"
        assert body["length"] == 0  # the form parser consumed the stream, as in Flask
        assert body["remote"] == "127.0.0.1" and body["cookies"] == {"k": "v"}

        teapot = replica.client.get("/score", params={"teapot": 1})
        assert teapot.status_code == 418 and teapot.text == "short and stout"
        assert teapot.headers["x-pot"] == "1" and teapot.headers["content-length"] == "15"
        assert "x-ms-run-function-failed" not in teapot.headers
        down = replica.client.get("/score", params={"down": 1})
        assert down.status_code == 503 and down.headers["x-ms-run-function-failed"] == "True"

        # v1 treats an HTTPException raised by run() like any other exception in run()
        not_json = replica.client.post("/score?json=1", content=b"plain text")
        assert not_json.status_code == 500
        assert not_json.json() == {
            "message": "An unexpected error occurred in scoring script. Check the logs for more info."
        }
        assert not_json.headers["x-ms-run-function-failed"] == "True"
        assert "415 Unsupported Media Type" in replica.log_text()


WERKZEUG_LOADED = """
    import sys

    def init():
        pass

    def run(data):
        return sorted(m for m in sys.modules if m.split(".")[0] in ("werkzeug", "azureml"))
"""

SCHEMA_WERKZEUG_LOADED = """
    import sys
    from inference_schema.schema_decorators import input_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @input_schema("data", StandardPythonParameterType([1]))
    def run(data):
        return sorted(m for m in sys.modules if m.split(".")[0] in ("werkzeug", "azureml"))
"""


def test_plain_and_schema_replicas_never_load_werkzeug(tmp_path: Path) -> None:
    for name, script in (("plain", WERKZEUG_LOADED), ("schema", SCHEMA_WERKZEUG_LOADED)):
        (tmp_path / name).mkdir()
        with running(tmp_path / name, script) as replica:
            assert replica.client.post("/score", json={"data": [1]}).json() == []


def test_rawhttp_without_werkzeug_in_the_environment_says_so(tmp_path: Path) -> None:
    site = tmp_path / "site" / "werkzeug"
    site.mkdir(parents=True)  # an environment where importing werkzeug fails
    (site / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'werkzeug'\", name='werkzeug')\n"
    )
    app = tmp_path / "app"
    app.mkdir()
    script = """
        from modelport.runtime.api import rawhttp

        def init():
            pass

        @rawhttp
        def run(request):
            return "never"
    """
    code, log = exit_code(app, script, env={"PYTHONPATH": str(site.parent)})
    assert code == 3
    assert "@rawhttp scripts and AMLRequest/AMLResponse need werkzeug" in log
