"""Management API: a service's collected model data, exported as one CSV."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from modelport.compute.layout import model_data_root
from modelport.control import modeldata
from modelport.control.api_services import _plain
from modelport.control.workspace import workspace_of
from modelport.errors import InvalidInputError, NotFoundError
from modelport.spec.names import check_service_name

router = APIRouter(prefix="/api/v1")


@router.get("/services/{name}/modeldata")
def export_model_data(
    name: str,
    request: Request,
    designation: str = "inputs",
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """The rows collected for ``designation`` within [since, until) (UTC when no zone
    is given); kept after the service is deleted, until retention removes them."""
    if designation not in modeldata.DESIGNATIONS:
        raise InvalidInputError(
            f"designation {designation!r} is not one of {', '.join(modeldata.DESIGNATIONS)}"
        )
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("since must be before until")
    ws = workspace_of(request)
    root = model_data_root(ws.home) / check_service_name(_plain(name))
    if not root.is_dir():
        ws.services.get(name)  # NotFoundError for a service that never was
        raise NotFoundError(f"service {name!r} has no collected model data")
    chosen = modeldata.covering(modeldata.partitions(root), designation, since, until)
    return StreamingResponse(
        modeldata.export_csv(chosen, since, until),
        media_type="text/csv",
        headers={"x-modelport-partitions": str(len(chosen))},
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
