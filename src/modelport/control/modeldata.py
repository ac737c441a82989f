"""A service's collected model data on disk, read back and aged out.

Replicas write CSV partitions (``runtime/collection.py``) under
``<home>/modeldata/default/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>``
(``/<hh>`` more when hourly).  Export picks the partitions a time range touches and
streams their rows as one CSV, with the columns of every file met (a later model
version may collect other features) and ``model``/``version`` first; rows that carry
``$aml_dc_scoring_timestamp`` are also filtered by it.  Retention deletes whole
partitions that ended before the cut-off, then the folders left empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelport.compute.layout import model_data_root
from modelport.errors import InvalidInputError
from modelport.spec.names import MODEL_NAME_RE, SERVICE_NAME_RE

FILE_NAME = "data.csv"
TIMESTAMP = "$aml_dc_scoring_timestamp"
# v1's, and the router's capture of whole requests
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general", "requests")
COLLECTED = DESIGNATIONS[:-1]  # what a replica's ModelDataCollector writes
CAPTURED_MODEL = "_router"  # the model folder of the router's capture (router/capture.py)
SWEEP_EVERY_S = 3600.0


@dataclass(frozen=True)
class Partition:
    model: str
    version: str
    designation: str
    start: datetime
    end: datetime
    path: Path


def partitions(root: Path) -> list[Partition]:
    """Every partition file under a service's root, oldest first; odd folders skipped."""
    found = []
    for path in root.glob(f"*/*/*/*/*/*/{FILE_NAME}"):
        found.extend(_partition(root, path, hourly=False))
    for path in root.glob(f"*/*/*/*/*/*/*/{FILE_NAME}"):
        found.extend(_partition(root, path, hourly=True))
    return sorted(found, key=lambda p: (p.start, p.model, p.version, p.designation))


def _partition(root: Path, path: Path, hourly: bool) -> list[Partition]:
    parts = path.relative_to(root).parts[:-1]
    model, version, designation, *when = parts
    try:
        year, month, day, *hour = (int(v) for v in when)
        start = datetime(year, month, day, hour[0] if hour else 0, tzinfo=UTC)
    except ValueError:
        return []
    length = timedelta(hours=1) if hourly else timedelta(days=1)
    return [Partition(model, version, designation, start, start + length, path)]


def received_partition(root: Path, name: str) -> Path:
    """The file under ``root`` that a replica's partition ``name`` (``<model>/<version>/
    <designation>/<yyyy>/<mm>/<dd>[/<hh>]``, as ``rowsink.partition`` makes it) names;
    :class:`InvalidInputError` for anything else, so a replica writes nowhere but there."""
    parts = name.split("/")
    if len(parts) not in (6, 7):
        raise InvalidInputError(
            f"partition {name[:200]!r} is not <model>/<version>/<designation>/<yyyy>/<mm>/<dd>"
            "[/<hh>]"
        )
    model, version, designation, *when = parts
    if not MODEL_NAME_RE.match(model):
        raise InvalidInputError(f"partition {name[:200]!r}: {model[:100]!r} is no model name")
    if not (
        version == "default" or (version.isdigit() and version.isascii() and len(version) < 20)
    ):
        raise InvalidInputError(f"partition {name[:200]!r}: {version[:100]!r} is no model version")
    if designation not in COLLECTED:
        raise InvalidInputError(
            f"partition {name[:200]!r}: designation {designation[:100]!r} is not one of "
            f"{', '.join(COLLECTED)}"
        )
    _check_date(name, when)
    return root.joinpath(*parts) / FILE_NAME


def received_capture(name: str) -> tuple[str, Path]:
    """The service and the file (relative to its folder) a router's capture partition
    ``name`` (``<service>/_router/<version>/requests/<yyyy>/<mm>/<dd>[/<hh>]``) names;
    :class:`InvalidInputError` for anything else."""
    parts = name.split("/")
    shape = "<service>/_router/<version>/requests/<yyyy>/<mm>/<dd>[/<hh>]"
    if len(parts) not in (7, 8) or parts[1] != CAPTURED_MODEL or parts[3] != "requests":
        raise InvalidInputError(f"partition {name[:200]!r} is not {shape}")
    service, _, version, _, *when = parts
    if not (3 <= len(service) <= 32 and SERVICE_NAME_RE.match(service)):
        raise InvalidInputError(f"partition {name[:200]!r}: {service[:100]!r} is no service name")
    if not MODEL_NAME_RE.match(version):
        raise InvalidInputError(f"partition {name[:200]!r}: {version[:100]!r} is no version name")
    _check_date(name, when)
    return service, Path(*parts[1:]) / FILE_NAME


def _check_date(name: str, when: list[str]) -> None:
    digits = [4, 2, 2, 2][: len(when)]
    if any(
        len(v) != n or not (v.isdigit() and v.isascii()) for v, n in zip(when, digits, strict=True)
    ):
        raise InvalidInputError(f"partition {name[:200]!r}: its date is not yyyy/mm/dd[/hh]")
    try:
        year, month, day, *hour = (int(v) for v in when)
        datetime(year, month, day, hour[0] if hour else 0, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInputError(f"partition {name[:200]!r}: {exc}") from None


def covering(
    found: Iterable[Partition], designation: str, since: datetime | None, until: datetime | None
) -> list[Partition]:
    """The partitions of ``designation`` that overlap [since, until)."""
    return [
        p
        for p in found
        if p.designation == designation
        and (since is None or p.end > since)
        and (until is None or p.start < until)
    ]


def export_csv(
    chosen: list[Partition], since: datetime | None, until: datetime | None
) -> Iterator[bytes]:
    """One CSV of the rows of ``chosen``: header first, then chunks of rows."""
    headers = [_header(p.path) for p in chosen]
    columns: list[str] = []
    for header in headers:
        columns += [c for c in header if c not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "version", *columns])
    for partition, header in zip(chosen, headers, strict=True):
        at = {name: i for i, name in enumerate(header)}
        when = at.get(TIMESTAMP)
        with partition.path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if when is not None and not _within(row, when, since, until):
                    continue
                values = [row[at[c]] if c in at and at[c] < len(row) else "" for c in columns]
                writer.writerow([partition.model, partition.version, *values])
                if out.tell() >= 1 << 16:
                    yield out.getvalue().encode()
                    out.seek(0)
                    out.truncate()
    yield out.getvalue().encode()


def _header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _within(row: list[str], index: int, since: datetime | None, until: datetime | None) -> bool:
    try:
        when = datetime.fromisoformat(row[index])
    except (IndexError, ValueError):
        return True  # a row whose time cannot be read stays: its partition matched
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (since is None or when >= since) and (until is None or when < until)


def remove_older(home: Path, cutoff: datetime) -> int:
    """Delete the partitions of every service of the workspace that ended by
    ``cutoff``, and the folders left empty; how many went."""
    removed = 0
    for service in model_data_root(home).glob("*"):
        for partition in partitions(service):
            if partition.end <= cutoff:
                partition.path.unlink(missing_ok=True)
                removed += 1
                _prune_empty(partition.path.parent, service)
    return removed


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            return
        folder = folder.parent
