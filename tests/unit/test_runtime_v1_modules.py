"""The v1 stand-ins: which are provided, what they say, and ModelDataCollector with collection off."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from modelport.runtime import v1paths
from modelport.runtime.datacollector import (
    CORRELATION_HEADERS,
    DataCollectionUnavailable,
    ModelDataCollector,
)

CORRELATIONS = {name: f"v{i}" for i, name in enumerate(CORRELATION_HEADERS)}


@pytest.fixture
def clean_path() -> Iterator[None]:
    """Undo what provide() appends to sys.path and the modules it lets tests import."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [m for m in sys.modules if m.split(".")[0] in v1paths.PACKAGES]:
        del sys.modules[name]


def test_provide_appends_one_folder_per_missing_package(clean_path: None) -> None:
    provided, real = v1paths.provide()
    assert provided == ["azureml", "azureml_inference_server_http"] and real == []
    assert sys.path[-2:] == [str(v1paths.FOLDER / "sdk"), str(v1paths.FOLDER / "server")]
    from azureml.contrib.services.aml_response import AMLResponse
    from azureml.core import Model
    from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp

    from modelport.runtime import api, models

    assert Model is models.Model and rawhttp is api.rawhttp
    assert AMLRequest is api.AMLRequest and AMLResponse is api.AMLResponse
    with pytest.raises(ImportError, match=r"azureml\.core\.Run is not available inside"):
        from azureml.core import Run  # noqa: F401
    assert not hasattr(Model, "__wrapped__")


def test_the_log_line_names_what_was_provided_and_what_was_not() -> None:
    line = v1paths.describe(["azureml_inference_server_http"], ["azureml"])
    assert line == (
        "v1 modules provided: azureml_inference_server_http.api.aml_request/aml_response; "
        "the environment's own azureml used instead"
    )


def test_collection_off_collects_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AML_MODEL_DC_STORAGE_ENABLED", raising=False)
    collector = ModelDataCollector("m", designation="inputs", feature_names=["a"])
    assert "Data collection is not enabled" in capsys.readouterr().out
    assert collector.collect([1, 2]) is None
    assert collector.collect([1], user_correlation_id="c") is None
    rows = [1, 2]
    assert collector.add_correlations(rows, None) is rows


def test_given_correlations_are_appended_as_v1_does() -> None:
    collector = ModelDataCollector("m")
    assert collector.add_correlations([1], CORRELATIONS) == [1, *CORRELATIONS.values()]
    one_row = collector.add_correlations(np.array([1, 2]), CORRELATIONS)
    assert one_row.shape == (1, 10) and one_row[0, 2] == "v0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert collector.add_correlations("text", CORRELATIONS) == "text"
    assert "input data must be list" in str(caught[0].message)


def test_collection_on_without_a_place_for_the_data_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AML_MODEL_DC_STORAGE_ENABLED", "true")
    monkeypatch.delenv("MODELPORT_MODELDATA_DIR", raising=False)
    with pytest.raises(DataCollectionUnavailable, match="was given no place for model data"):
        ModelDataCollector("m", designation="predictions")
