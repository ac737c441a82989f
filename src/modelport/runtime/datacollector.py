"""``azureml.monitoring.ModelDataCollector`` as v1 has it when a service does not collect.

v1 (azureml-monitoring 0.1.0a21) collects only where the service sets
``AML_MODEL_DC_STORAGE_ENABLED=true``.  Otherwise the constructor prints one line and
stops there, ``collect()`` returns ``None``, and ``add_correlations(data, None)``
returns ``data`` as it was (given correlations, it appends their eight columns).
modelport stores no collected data yet, so where collection is on the constructor
raises :class:`DataCollectionUnavailable` rather than drop the data without a word.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

ENABLED = "AML_MODEL_DC_STORAGE_ENABLED"
DEBUG = "AML_MODEL_DC_DEBUG"
CORRELATION_HEADERS = (
    "$aml_dc_correlation_id",
    "$aml_dc_scoring_timestamp",
    "$aml_dc_boundary",
    "$aml_workspace",
    "$aml_service_name",
    "$aml_model_name",
    "$aml_model_version",
    "$aml_request_id",
)


class DataCollectionUnavailable(RuntimeError):
    """The service collects model data, which modelport cannot store yet."""


class ModelDataCollector:
    """v1's collector with collection off: ``collect()`` keeps nothing and returns None."""

    AML_DC_CORRELATION_HEADER = CORRELATION_HEADERS[0]
    AML_DC_SCORING_TIMESTAMP_HEADER = CORRELATION_HEADERS[1]
    AML_DC_BOUNDARY_HEADER = CORRELATION_HEADERS[2]
    AML_WORKSPACE_HEADER = CORRELATION_HEADERS[3]
    AML_SERVICE_NAME_HEADER = CORRELATION_HEADERS[4]
    AML_MODEL_NAME_HEADER = CORRELATION_HEADERS[5]
    AML_MODEL_VERSION_HEADER = CORRELATION_HEADERS[6]
    AML_REQUEST_ID_HEADER = CORRELATION_HEADERS[7]

    def __init__(
        self,
        model_name: str,
        designation: str = "default",
        feature_names: list[str] | None = None,
        workspace: str = "default/default/default",
        webservice_name: str = "default",
        model_version: str = "default",
        collection_name: str = "default",
    ) -> None:
        if os.environ.get(ENABLED) == "true":
            raise DataCollectionUnavailable(
                f"modelport does not collect model data yet, and this service has data "
                f"collection on ({ENABLED}=true): ModelDataCollector({model_name!r}, "
                f"designation={designation!r}) would lose what it collects. Deploy with "
                "collect_model_data off (deployment config dataCollection.storageEnabled: "
                "false) to run this script; its collect() calls then do nothing, as in v1."
            )
        self.model_name = model_name
        self._feature_names = list(feature_names) if feature_names is not None else None
        if os.environ.get(DEBUG, "").lower() == "true":
            print(f"{DEBUG}=true: modelport does not print collected data; collect() does nothing.")
        else:
            print(
                f"Data collection is not enabled ({ENABLED} is not 'true' for this service); "
                "collect() does nothing."
            )

    def collect(self, input_data: Any, user_correlation_id: str = "") -> None:
        """Collect nothing, as v1 does with collection off; returns None (no correlations)."""
        return None

    def add_correlations(self, input_data: Any, correlations: dict[str, Any] | None) -> Any:
        """``input_data`` with the correlation columns appended (unchanged if there are none)."""
        if correlations is None:
            return input_data
        values = [correlations[name] for name in CORRELATION_HEADERS]
        if isinstance(input_data, list):
            return input_data + values
        pandas, numpy = sys.modules.get("pandas"), sys.modules.get("numpy")
        if numpy is not None and isinstance(input_data, numpy.ndarray):
            rows = numpy.array([input_data]) if input_data.ndim == 1 else input_data
            extra = numpy.repeat(numpy.array([values], dtype=object), rows.shape[0], axis=0)
            return numpy.append(rows, extra, axis=1)
        if pandas is not None and isinstance(input_data, pandas.DataFrame):
            frame = input_data.copy(deep=False)
            for name, value in zip(CORRELATION_HEADERS, values, strict=True):
                frame.insert(len(frame.columns), name, value)
            return frame
        warnings.warn(
            "collect failed: input data must be list,numpy array, pandas dataframe, or spark "
            "dataframe. Corresponding modules must be installed first.",
            stacklevel=2,
        )
        return input_data
