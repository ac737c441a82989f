"""``azureml.monitoring.ModelDataCollector`` as v1 has it (contract section 6).

v1 (azureml-monitoring 0.1.0a21) collects only where the service sets
``AML_MODEL_DC_STORAGE_ENABLED=true`` (``collect_model_data=True``).  Otherwise the
constructor prints one line and stops there, ``collect()`` returns ``None``, and
``add_correlations(data, None)`` returns ``data`` as it was.  Where collection is on,
``collect()`` turns its input into CSV rows for ``collection.Sink`` (off the request
path) and, for ``inputs``, appends and returns the eight correlation fields that
``add_correlations`` adds to predictions so the two join.  A target that gives the
replica no place for the data (a folder, or the control plane's address) makes the
constructor raise :class:`DataCollectionUnavailable` rather than drop the data without a word.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from modelport import rowupload
from modelport.rowsink import Partitions
from modelport.runtime import collection
from modelport.runtime.models import MODELS_DIR, app_root
from modelport.runtime.request_context import REQUEST_ID

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
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
UNSUPPORTED = (
    "collect failed: input data must be list,numpy array, pandas dataframe, or spark "
    "dataframe. Corresponding modules must be installed first."
)


class DataCollectionUnavailable(RuntimeError):
    """The service collects model data, which its compute target cannot store yet."""


class ModelDataCollector:
    """v1's collector: rows of one model and designation into the service's partitions."""

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
        self.model_name = model_name
        self.designation = "general" if designation == "default" else designation
        if self.designation not in DESIGNATIONS:
            raise ValueError(
                f"designation {designation!r} is not one of {', '.join(DESIGNATIONS)} (or default)"
            )
        self._feature_names = list(feature_names) if feature_names is not None else None
        self._sink: collection.Sink | None = None
        if os.environ.get(ENABLED) != "true":
            print(
                f"Data collection is not enabled ({ENABLED} is not 'true' for this service); "
                "collect() does nothing."
            )
            return
        root = collection.root()
        if root is None:
            raise DataCollectionUnavailable(
                f"this service has data collection on ({ENABLED}=true), but this replica was "
                f"given no place for model data ({collection.DIR_ENV}, or "
                f"{rowupload.REPLICA}_URL with its credential): ModelDataCollector("
                f"{model_name!r}, designation={designation!r}) would lose what it collects. "
                "Run it through a compute target, or with collect_model_data off (deployment "
                "config dataCollection.storageEnabled: false); collect() then does nothing, "
                "as in v1."
            )
        self._root = root
        self._hourly = os.environ.get(collection.BOUNDARY_ENV, "").lower() == "hour"
        self._debug = os.environ.get(DEBUG, "").lower() == "true"
        self._workspace = workspace.lower()
        self._service = os.environ.get("SERVICE_NAME") or webservice_name
        self.model_version = (
            _latest_version(model_name) if model_version == "default" else str(model_version)
        )
        self.collection_name = collection_name
        self._partitions = Partitions(
            self._root, model_name, self.model_version, self.designation, self._hourly
        )
        self._sink = collection.shared_sink()

    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict[str, Any] | None:
        """Queue ``input_data`` as CSV rows; for ``inputs``, the correlations appended
        to them (give them to ``add_correlations`` for the predictions).  Never raises
        for the request: data it cannot read is a warning and None, as in v1."""
        if self._sink is None:
            return None
        table = _table(input_data, self._feature_names)
        if table is None:
            warnings.warn(UNSUPPORTED, stacklevel=2)
            return None
        header, rows = table
        now = datetime.now(UTC)
        correlations = None
        if self.designation == "inputs":
            correlations = self._correlations(now, user_correlation_id)
            values = [correlations[name] for name in CORRELATION_HEADERS]
            header = [*header, *CORRELATION_HEADERS]
            rows = [row + values for row in rows]
        path = self._partitions.at(now)
        if self._debug:
            for row in rows:
                print(",".join(str(v) for v in row))
        self._sink.put(path, header, rows)
        return correlations

    def _correlations(self, now: datetime, user_correlation_id: str) -> dict[str, Any]:
        ident = str(uuid.uuid4())
        return {
            "$aml_dc_correlation_id": f"{user_correlation_id}-{ident}"
            if user_correlation_id
            else ident,
            "$aml_dc_scoring_timestamp": now.isoformat(),
            "$aml_dc_boundary": 60 if self._hourly else 1440,
            "$aml_workspace": self._workspace,
            "$aml_service_name": self._service,
            "$aml_model_name": self.model_name,
            "$aml_model_version": self.model_version,
            "$aml_request_id": REQUEST_ID.get(),
        }

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
        warnings.warn(UNSUPPORTED, stacklevel=2)
        return input_data


def _table(data: Any, names: list[str] | None) -> tuple[list[str], list[list[Any]]] | None:
    """(header, rows) of a list (one row), a numpy array (1-D: one row) or a pandas
    DataFrame; None for anything else."""
    pandas, numpy = sys.modules.get("pandas"), sys.modules.get("numpy")
    if isinstance(data, list):
        rows = [list(data)]
    elif numpy is not None and isinstance(data, numpy.ndarray):
        rows = [data.tolist()] if data.ndim == 1 else [list(r) for r in data.tolist()]
    elif pandas is not None and isinstance(data, pandas.DataFrame):
        header = names or [str(c) for c in data.columns]
        return header, [list(r) for r in data.itertuples(index=False, name=None)]
    else:
        return None
    width = max(map(len, rows), default=0)
    header = names or [f"feature_{i}" for i in range(width)]
    if len(header) + len(CORRELATION_HEADERS) == width:  # add_correlations() made these rows
        header = [*header, *CORRELATION_HEADERS]
    return header, rows


def _latest_version(model: str) -> str:
    """v1's ``model_version='default'``: the highest version of the model deployed here."""
    folder = app_root() / MODELS_DIR / model
    try:
        versions = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    except OSError:
        versions = []
    return str(max(versions)) if versions else "default"
