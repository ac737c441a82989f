"""``modelport data export``: a service's collected model data as CSV or Parquet."""

from __future__ import annotations

import csv
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlencode

import click

from modelport.cli.base import console
from modelport.errors import InvalidInputError

# v1's, and the router's capture of whole requests
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general", "requests")
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def moment(text: str, now: datetime) -> datetime:
    """``10m``/``2h``/``7d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    ago = _AGO.match(text.strip())
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{text!r} is no time: give an age such as 10m, 2h or 7d, or an ISO 8601 time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@click.group("data")
def data_group() -> None:
    """Collected model data (ModelDataCollector)."""


@data_group.command("export")
@click.option("-n", "--name", required=True, help="The service.")
@click.option("--designation", type=click.Choice(DESIGNATIONS), default="inputs", show_default=True)
@click.option("--since", help="From this time on: an age (10m, 2h, 7d) or an ISO 8601 time.")
@click.option("--until", help="Before this time: an age or an ISO 8601 time.")
@click.option(
    "-o", "--output", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option(
    "-f", "--file", "path", type=click.Path(dir_okay=False), help="Write here (CSV: else stdout)."
)
def export(
    name: str,
    designation: str,
    since: str | None,
    until: str | None,
    output: str,
    path: str | None,
) -> None:
    """Export a service's collected rows of one designation, all models and versions."""
    from modelport.sdk.workspace import Workspace

    now = datetime.now(UTC)
    params = {"designation": designation}
    for key, value in (("since", since), ("until", until)):
        if value:
            params[key] = moment(value, now).isoformat()
    if output == "parquet" and path is None:
        raise InvalidInputError("Parquet goes to a file: give --file PATH")
    url = f"/api/v1/services/{quote(name, safe='')}/modeldata?{urlencode(params)}"
    with Workspace.from_config() as ws:
        if output == "csv":
            _csv(ws.client, url, path)
            return
        assert path is not None
        with tempfile.NamedTemporaryFile(suffix=".csv") as staged:
            ws.client.download(url, staged)
            staged.flush()
            rows = _parquet(Path(staged.name), Path(path))
    console.print(f"{rows} row(s) written to {path}")


def _csv(client: object, url: str, path: str | None) -> None:
    from modelport.sdk.client import ApiClient

    assert isinstance(client, ApiClient)
    if path is None:
        client.download(url, sys.stdout.buffer)
        return
    target: IO[bytes]
    with open(path, "wb") as target:
        client.download(url, target)


def _parquet(source: Path, target: Path) -> int:
    try:
        import pyarrow
        from pyarrow import csv as pacsv
        from pyarrow import parquet
    except ImportError:
        raise InvalidInputError(
            "Parquet needs pyarrow: pip install 'modelport[data]' (or -o csv)"
        ) from None
    with source.open(newline="") as f:
        names = next(csv.reader(f), [])
    # Strings as collected: a type guessed from some rows could fail or round others.
    strings = pacsv.ConvertOptions(
        column_types={n: pyarrow.string() for n in names}, strings_can_be_null=False
    )
    table = pacsv.read_csv(source, convert_options=strings)
    parquet.write_table(table, target)
    return int(table.num_rows)
