"""Model data collection with collection on: rows, partitions, correlations, and a
buffer that drops and counts rather than block when the disk stalls."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelport.runtime import collection
from modelport.runtime.collection import Rows, Sink, partition
from modelport.runtime.datacollector import CORRELATION_HEADERS, ModelDataCollector
from modelport.runtime.request_context import REQUEST_ID


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
    REQUEST_ID.set("req-7")
    corr = inputs.collect(np.array([[1.5, 2], [3, 4]]), user_correlation_id="mine")
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
