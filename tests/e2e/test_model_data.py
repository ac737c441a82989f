"""Model data collection on the local target, as a v1 score.py does it: rows land in
the service's partitions, joined by their correlation ids, and stop when it is off."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pyarrow import parquet

from modelport import InferenceConfig, Model, Workspace
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_services import fixed, post, source

COLLECTING = """
    import json
    from azureml.monitoring import ModelDataCollector

    def init():
        global inputs, predictions
        inputs = ModelDataCollector("scaler", designation="inputs", feature_names=["a", "b"])
        predictions = ModelDataCollector("scaler", designation="predictions", feature_names=["y"])

    def run(raw):
        data = json.loads(raw)["data"]
        correlations = inputs.collect(data, user_correlation_id="t")
        result = [data[0] * 10 + data[1]]
        predictions.collect(predictions.add_correlations(result, correlations))
        return {"y": result, "correlations": correlations}
"""


def rows(home: Path, designation: str) -> list[dict[str, str]]:
    found = []
    for path in sorted((home / "modeldata").rglob(f"{designation}/*/*/*/data.csv")):
        with path.open(newline="") as f:
            found += list(csv.DictReader(f))
    return found


def export(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    command = [sys.executable, "-m", "modelport", "data", "export", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_collected_rows_match_what_was_scored_and_stop_when_off(
    server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    folder = tmp_path / "collecting"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(COLLECTING))
    inference = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "dc-svc", [model], inference, fixed(1, collect_model_data=True))
    service.wait_for_deployment()
    assert not [w for w in service.warnings if "collectModelData" in w]
    key = service.get_keys()[0]
    scored = {}
    for i in range(5):
        answer = post(service, {"data": [i, i + 1]}, key)
        assert answer.status_code == 200, answer.text
        correlations = answer.json()["correlations"]
        assert correlations["$aml_request_id"] == answer.headers["x-request-id"]
        scored[correlations["$aml_dc_correlation_id"]] = (i, answer.json()["y"][0])
    wait_for(
        lambda: (
            len(rows(server.home, "inputs")) == 5 and len(rows(server.home, "predictions")) == 5
        ),
        what="5 rows of inputs and of predictions",
    )
    inputs = {r["$aml_dc_correlation_id"]: r for r in rows(server.home, "inputs")}
    predictions = {r["$aml_dc_correlation_id"]: r for r in rows(server.home, "predictions")}
    assert set(inputs) == set(predictions) == set(scored)
    for ident, (i, y) in scored.items():
        assert ident.startswith("t-")
        assert (inputs[ident]["a"], inputs[ident]["b"]) == (str(i), str(i + 1))
        assert predictions[ident]["y"] == str(y)
        assert inputs[ident]["$aml_service_name"] == "dc-svc"
        assert inputs[ident]["$aml_model_version"] == str(model.version)
    day = next((server.home / "modeldata").rglob("inputs/*/*/*/data.csv"))
    assert day.relative_to(server.home).parts[:5] == (
        "modeldata",
        "default",
        "dc-svc",
        "scaler",
        str(model.version),
    )

    exported = export(server.home, "-n", "dc-svc", "--since", "1h")
    assert exported.returncode == 0, exported.stderr
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {r["$aml_dc_correlation_id"] for r in table} == set(scored)
    assert {(r["model"], r["version"]) for r in table} == {("scaler", str(model.version))}
    target = tmp_path / "predictions.parquet"
    made = export(server.home, "-n", "dc-svc", "--designation", "predictions", "-o", "parquet")
    assert made.returncode != 0 and "give --file PATH" in made.stderr
    made = export(
        server.home,
        "-n",
        "dc-svc",
        "--designation",
        "predictions",
        "-o",
        "parquet",
        "-f",
        str(target),
    )
    assert made.returncode == 0, made.stderr
    frame = parquet.read_table(target).to_pylist()
    assert sorted(r["y"] for r in frame) == sorted(str(y) for _, y in scored.values())
    later = export(server.home, "-n", "dc-svc", "--since", "2099-01-01")
    assert later.returncode == 0 and later.stdout.count("\n") == 1  # the header alone
    unknown = export(server.home, "-n", "nope-svc")
    assert unknown.returncode != 0 and "not found" in unknown.stderr

    service.update(collect_model_data=False)
    service.wait_for_deployment()
    answer = post(service, {"data": [7, 7]}, key)
    assert answer.status_code == 200 and answer.json()["correlations"] is None
    assert len(rows(server.home, "inputs")) == 5
    assert "Data collection is not enabled" in service.get_logs()
    service.delete()


def test_the_router_captures_requests_without_code_redacted_and_exportable(
    server: ServerProcess, ws: Workspace, model: Model, tmp_path: Path
) -> None:
    config = fixed(1, capture_sample_rate=1.0, capture_redact=["$.secret"])
    service = Model.deploy(ws, "cap-svc", [model], source(tmp_path), config)
    service.wait_for_deployment()
    key = service.get_keys()[0]
    ids = set()
    for i in range(4):
        answer = post(service, {"x": [i], "secret": "hunter2"}, key)
        assert answer.status_code == 200
        ids.add(answer.headers["x-request-id"])
    assert post(service, {"x": [9]}).status_code == 401  # refused: not captured

    def captured() -> list[dict[str, str]]:
        return rows(server.home, "requests")

    wait_for(lambda: len(captured()) == 4, what="4 captured requests")
    assert {r["request_id"] for r in captured()} == ids
    for row in captured():
        sent = json.loads(row["request"])
        assert sent["secret"] == "[REDACTED]" and len(sent["x"]) == 1
        assert json.loads(row["response"])["y"] == [sent["x"][0] * 10]
        assert row["status"] == "200" and row["version"] == "default"
        assert "hunter2" not in json.dumps(row)
    exported = export(server.home, "-n", "cap-svc", "--designation", "requests")
    assert exported.returncode == 0, exported.stderr
    assert len(list(csv.DictReader(io.StringIO(exported.stdout)))) == 4
    service.delete()
