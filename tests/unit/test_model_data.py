"""Model data collection with collection on: rows, partitions, correlations, and a
buffer that drops and counts rather than block when the disk stalls."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelport.cli.data import moment
from modelport.compute import plan
from modelport.control import modeldata
from modelport.errors import ConfigError, InvalidInputError
from modelport.router import capture as capture_module
from modelport.router.capture import Capture
from modelport.runtime import collection
from modelport.runtime.collection import Rows, Sink, partition
from modelport.runtime.datacollector import CORRELATION_HEADERS, ModelDataCollector
from modelport.runtime.request_context import REQUEST_ID
from modelport.spec.deployment import AksServiceDeploymentConfiguration
from modelport.spec.retention import RETENTION_VARIABLE, retention_days


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def collecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    """Collection on, into tmp_path, with a sink of the test's own."""
    root = tmp_path / "modeldata"
    app = tmp_path / "app"
    for version in ("1", "3", "2"):
        (app / "azureml-models" / "iris" / version).mkdir(parents=True)
    monkeypatch.setenv("AML_MODEL_DC_STORAGE_ENABLED", "true")
    monkeypatch.setenv(collection.DIR_ENV, str(root))
    monkeypatch.setenv("AML_APP_ROOT", str(app))
    monkeypatch.setenv("SERVICE_NAME", "irissvc")
    monkeypatch.delenv(collection.BOUNDARY_ENV, raising=False)
    sink = Sink(capacity=100, flush_s=60)
    monkeypatch.setattr(collection, "_shared", sink)
    yield sink
    sink.close()


def test_partitions_follow_v1s_layout_daily_or_hourly() -> None:
    when = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    daily = partition(Path("/r"), "iris", "2", "inputs", when, hourly=False)
    assert daily == Path("/r/iris/2/inputs/2026/03/04/data.csv")
    assert partition(Path("/r"), "m", "1", "general", when, hourly=True).parts[-3:] == (
        "04",
        "05",
        "data.csv",
    )


def test_inputs_and_predictions_join_on_their_correlations(
    collecting: Sink, tmp_path: Path
) -> None:
    inputs = ModelDataCollector("iris", designation="inputs", feature_names=["a", "b"])
    predictions = ModelDataCollector("iris", designation="predictions", feature_names=["y"])
    token = REQUEST_ID.set("req-7")
    try:
        corr = inputs.collect(np.array([[1.5, 2], [3, 4]]), user_correlation_id="mine")
    finally:
        REQUEST_ID.reset(token)  # the context is the test session's: leave it as found
    assert corr is not None and list(corr) == list(CORRELATION_HEADERS)
    assert corr["$aml_dc_correlation_id"].startswith("mine-")
    assert corr["$aml_request_id"] == "req-7" and corr["$aml_service_name"] == "irissvc"
    assert corr["$aml_model_version"] == "3"  # 'default': the highest deployed here
    assert corr["$aml_dc_boundary"] == 1440
    assert predictions.collect(predictions.add_correlations([0], corr)) is None
    collecting.flush()
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    rows_in = read(tmp_path / "modeldata" / "iris" / "3" / "inputs" / day / "data.csv")
    rows_out = read(tmp_path / "modeldata" / "iris" / "3" / "predictions" / day / "data.csv")
    assert rows_in[0] == ["a", "b", *CORRELATION_HEADERS]
    assert [r[:2] for r in rows_in[1:]] == [["1.5", "2.0"], ["3.0", "4.0"]]
    assert rows_out[0] == ["y", *CORRELATION_HEADERS]  # add_correlations' columns named
    ids_in = {r[2] for r in rows_in[1:]}
    assert ids_in == {corr["$aml_dc_correlation_id"]} == {rows_out[1][1]}
    assert collecting.written == 3 and collecting.dropped == 0


def test_a_dataframe_gives_its_columns_and_a_second_write_no_second_header(
    collecting: Sink, tmp_path: Path
) -> None:
    general = ModelDataCollector("iris", model_version="1")
    frame = pd.DataFrame({"x": [1, 2], "label": ["a", "b"]})
    assert general.collect(frame) is None
    collecting.flush()
    general.collect(frame)
    collecting.flush()
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    rows = read(tmp_path / "modeldata" / "iris" / "1" / "general" / day / "data.csv")
    assert rows == [["x", "label"], ["1", "a"], ["2", "b"], ["1", "a"], ["2", "b"]]


def test_unsupported_input_is_a_warning_and_nothing_collected(collecting: Sink) -> None:
    collector = ModelDataCollector("iris", designation="inputs")
    with pytest.warns(UserWarning, match="input data must be list"):
        assert collector.collect("text") is None
    collecting.flush()
    assert collecting.written == 0


def test_an_unknown_designation_is_refused(collecting: Sink) -> None:
    with pytest.raises(ValueError, match="not one of inputs, predictions"):
        ModelDataCollector("iris", designation="outputs")


def test_a_stalled_writer_makes_collect_drop_and_count_never_block(tmp_path: Path) -> None:
    release = threading.Event()
    entered = threading.Event()
    written: list[Rows] = []

    def stalled(batch: Rows) -> None:
        entered.set()
        release.wait(30)
        written.append(batch)

    sink = Sink(capacity=10, flush_s=0.01, write=stalled)
    try:
        assert sink.put(tmp_path / "a.csv", ["x"], [[i] for i in range(4)])
        assert entered.wait(10)  # the writer holds those 4 rows and is stuck
        started = time.monotonic()
        kept = [sink.put(tmp_path / "a.csv", ["x"], [[i]]) for i in range(20)]
        assert time.monotonic() - started < 1.0  # never waits for the disk
        assert kept.count(True) == 6 and sink.dropped == 14
    finally:
        release.set()
        sink.close()
    assert sum(len(b.rows) for b in written) == 10 and sink.written == 10


def test_rows_held_at_close_are_written(tmp_path: Path) -> None:
    sink = Sink(capacity=100, flush_s=3600)
    sink.put(tmp_path / "p" / "data.csv", ["x"], [[1], [2]])
    sink.close()
    assert read(tmp_path / "p" / "data.csv") == [["x"], ["1"], ["2"]]
    assert not sink.put(tmp_path / "p" / "data.csv", ["x"], [[3]])  # closed: counted
    assert sink.dropped == 1


def write_partition(root: Path, rel: str, header: list[str], rows: list[list[str]]) -> Path:
    path = root / rel / "data.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_export_takes_the_partitions_in_range_with_every_column_met(tmp_path: Path) -> None:
    ts = "$aml_dc_scoring_timestamp"
    write_partition(tmp_path, "m/1/inputs/2026/03/01", ["a", ts], [["1", "2026-03-01T10:00:00"]])
    write_partition(
        tmp_path,
        "m/2/inputs/2026/03/02",
        ["a", "b", ts],
        [["2", "x", "2026-03-02T09:00:00+00:00"], ["3", "y", "2026-03-02T23:00:00+00:00"]],
    )
    write_partition(tmp_path, "m/2/predictions/2026/03/02", ["y"], [["9"]])
    write_partition(tmp_path, "m/2/inputs/2026/03/03/07", ["a", "b"], [["4", "z"]])
    (tmp_path / "m/2/inputs/notayear/03/03").mkdir(parents=True)
    found = modeldata.partitions(tmp_path)
    assert [(p.version, p.designation, p.start.day) for p in found] == [
        ("1", "inputs", 1),
        ("2", "inputs", 2),
        ("2", "predictions", 2),
        ("2", "inputs", 3),
    ]
    assert found[-1].end - found[-1].start == timedelta(hours=1)
    since = datetime(2026, 3, 1, 12, tzinfo=UTC)
    until = datetime(2026, 3, 3, 7, 30, tzinfo=UTC)
    chosen = modeldata.covering(found, "inputs", since, until)
    assert [p.start.day for p in chosen] == [1, 2, 3]
    text = b"".join(modeldata.export_csv(chosen, since, until)).decode()
    assert list(csv.reader(io.StringIO(text))) == [
        ["model", "version", "a", ts, "b"],
        ["m", "2", "2", "2026-03-02T09:00:00+00:00", "x"],
        ["m", "2", "3", "2026-03-02T23:00:00+00:00", "y"],
        ["m", "2", "4", "", "z"],  # no timestamp: its hour's partition decides
    ]


def test_retention_removes_partitions_that_ended_and_their_empty_folders(tmp_path: Path) -> None:
    root = tmp_path / "modeldata" / "default" / "svc"
    old = write_partition(root, "m/1/inputs/2026/01/01", ["a"], [["1"]])
    kept = write_partition(root, "m/1/inputs/2026/01/03", ["a"], [["1"]])
    assert modeldata.remove_older(tmp_path, datetime(2026, 1, 2, tzinfo=UTC)) == 1
    assert not old.exists() and not (root / "m/1/inputs/2026/01/01").exists()
    assert kept.exists() and root.is_dir()
    assert retention_days({}) is None and retention_days({RETENTION_VARIABLE: "30"}) == 30
    with pytest.raises(ConfigError, match="whole days"):
        retention_days({RETENTION_VARIABLE: "0"})


def test_export_times_are_ages_or_iso_times() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert moment("90m", now) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert moment("2d", now) == datetime(2026, 2, 27, 12, tzinfo=UTC)
    assert moment("2026-02-01T00:00", now) == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="no time"):
        moment("yesterday", now)


def test_capture_settings_are_checked_and_reach_the_plan() -> None:
    good = AksServiceDeploymentConfiguration.create(
        {"capture_sample_rate": 0.1, "capture_redact": ["$.password", "$..ssn"]}
    )
    doc = good.to_document()
    assert doc["dataCollection"] == {
        "captureSampleRate": 0.1,
        "captureRedact": ["$.password", "$..ssn"],
    }
    spec = {"deploymentConfig": doc}
    assert plan.plan(spec).capture == plan.CaptureSettings(0.1, 65536, ("$.password", "$..ssn"))
    assert plan.plan({"deploymentConfig": {"computeType": "AKS"}}).capture is None
    with pytest.raises(ConfigError) as bad:
        AksServiceDeploymentConfiguration.create(
            {"capture_sample_rate": 1.5, "capture_redact": ["$.[", "ok"]}
        )
    assert "capture_sample_rate must be between 0 and 1" in str(bad.value)
    assert "capture_redact: '$.[' is not a JSONPath" in str(bad.value)


def test_captured_bodies_are_redacted_or_withheld(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"rate": 1.0, "maxBytes": 40, "dir": "/x", "version": "blue", "redact": ["$..secret"]}
    capture = Capture.from_entry(entry)
    assert capture is not None
    assert capture.redacted(b'{"a": 1, "in": {"secret": "s3"}}', False) == (
        '{"a": 1, "in": {"secret": "[REDACTED]"}}'
    )
    assert "not JSON" in capture.redacted(b"secret=s3", False)
    assert "longer than captureMaxBytes" in capture.redacted(b'{"secret": "s', True)
    plain = Capture.from_entry({**entry, "redact": []})
    assert plain is not None and plain.redacted(b"caf\xc3\xa9", False) == "café"
    assert Capture.from_entry({**entry, "rate": 0}) is None


def test_capture_samples_and_cuts_on_the_request_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sink = Sink(capacity=1 << 20, flush_s=3600, write=capture_module._rows)
    monkeypatch.setattr(capture_module, "_sink", sink)
    draws = iter([0.05, 0.5, 0.09])
    monkeypatch.setattr(capture_module.random, "random", lambda: next(draws))
    entry = {"rate": 0.1, "maxBytes": 4, "dir": str(tmp_path), "version": "default"}
    capture = Capture.from_entry(entry)
    assert capture is not None
    headers = [(b"x-request-id", b"r-1")]
    for body in (b"abcdefgh", b"skipped", b"ab"):
        capture.offer(body, 200, b'{"y": 1}', headers, 0.0125)
    sink.close()
    (path,) = tmp_path.rglob("data.csv")
    assert path.relative_to(tmp_path).parts[:3] == ("_router", "default", "requests")
    rows = read(path)
    assert rows[0][1:] == list(capture_module.HEADER[1:])
    assert [r[1:] for r in rows[1:]] == [
        ["r-1", "default", "200", "12.500", "abcd", "True", '{"y"', "True"],
        ["r-1", "default", "200", "12.500", "ab", "False", '{"y"', "True"],
    ]


def test_the_target_and_the_replica_name_the_same_folder_variable() -> None:
    assert plan.MODEL_DATA_DIR == collection.DIR_ENV
