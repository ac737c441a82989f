"""Request and response bodies captured at the router, with no code in the service.

A service (or endpoint version) with ``captureSampleRate`` gets that share of its
scored requests written, beside what its ``ModelDataCollector`` writes, as
``<service>/_router/<version>/requests/<yyyy>/<mm>/<dd>/data.csv`` under the
workspace's model data.  On the request path the router only draws the sample and
hands over references (bodies cut to ``captureMaxBytes``); redaction and CSV
writing happen on the sink's thread (``rowsink.py``: bounded, drops and
counts, never blocks).  With redaction rules, a body that is not JSON, or that was
cut short, is not kept at all: a rule cannot be applied to what cannot be parsed.

A router pod on a Kubernetes target keeps nothing on its disk: its route entries
name the service instead of a folder, and the sink posts each batch to the control
plane (``rowupload.py``, with the compute target's capture credential from
``MODELPORT_CAPTURE_*``), which appends it to the same files.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelport import rowsink, rowupload

log = logging.getLogger("modelport.router")

MODEL = "_router"  # the model folder of captured traffic: no model wrote it
DESIGNATION = "requests"
REDACTED = "[REDACTED]"
WITHHELD = "[withheld: redaction rules apply and the body is {why}]"
HEADER = (
    "$aml_dc_scoring_timestamp",  # the name export filters by
    "request_id",
    "version",
    "status",
    "latency_ms",
    "request",
    "request_truncated",
    "response",
    "response_truncated",
)
SINK_BYTES = 32 * 1024 * 1024  # bodies held for the writer, at most


@dataclass
class Capture:
    """One route's capture settings, parsed once per route table."""

    rate: float
    max_bytes: int
    folder: Path
    version: str
    redact: tuple[str, ...] = ()
    _rules: list[Any] = field(default_factory=list, repr=False)
    _partitions: rowsink.Partitions | None = field(default=None, repr=False)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Capture | None:
        rate = float(entry.get("rate", 0))
        if rate <= 0:
            return None
        redact = tuple(str(r) for r in entry.get("redact") or ())
        if "dir" in entry:
            folder = Path(entry["dir"])
        elif _destination is not None:
            folder = Path(entry["service"])  # relative: the control plane places it
        else:
            log.warning("capture of %s: this router has no place for it", entry.get("service"))
            return None
        capture = cls(rate, int(entry["maxBytes"]), folder, str(entry["version"]), redact)
        capture._partitions = rowsink.Partitions(
            capture.folder, MODEL, capture.version, DESIGNATION, hourly=False
        )
        if redact:
            from jsonpath_ng.ext.parser import parse

            capture._rules = [parse(r) for r in redact]
        return capture

    def offer(
        self,
        request_body: bytes,
        status: int,
        response_body: bytes,
        headers: list[tuple[bytes, bytes]],
        seconds: float,
    ) -> bool | None:
        """On the request path: draw the sample, hand over what is drawn; None when
        not drawn, else whether the writer took it (False: its buffer was full)."""
        if random.random() >= self.rate:
            return None
        limit = self.max_bytes
        entry = _Entry(
            self,
            datetime.now(UTC),
            request_body[:limit],
            len(request_body) > limit,
            status,
            response_body[:limit],
            len(response_body) > limit,
            headers,
            seconds,
        )
        assert self._partitions is not None
        path = self._partitions.at(entry.at)
        return sink().put(path, HEADER, [[entry]], len(entry.request) + len(entry.response) + 256)

    def redacted(self, body: bytes, truncated: bool) -> str:
        """The body as text, with the rules applied (or withheld when they cannot be)."""
        if not self._rules:
            return body.decode("utf-8", "replace")
        if truncated:
            return WITHHELD.format(why="longer than captureMaxBytes")
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            return WITHHELD.format(why="not JSON")
        for rule in self._rules:
            doc = rule.update(doc, REDACTED)
        return json.dumps(doc)


@dataclass
class _Entry:
    capture: Capture
    at: datetime
    request: bytes
    request_truncated: bool
    status: int
    response: bytes
    response_truncated: bool
    headers: list[tuple[bytes, bytes]]
    seconds: float

    def row(self) -> list[object]:
        request_id = next((v for k, v in self.headers if k == b"x-request-id"), b"")
        c = self.capture
        return [
            self.at.isoformat(),
            request_id.decode("latin-1"),
            c.version,
            self.status,
            f"{self.seconds * 1000:.3f}",
            c.redacted(self.request, self.request_truncated),
            self.request_truncated,
            c.redacted(self.response, self.response_truncated),
            self.response_truncated,
        ]


def _rows(batch: rowsink.Rows) -> None:
    """On the sink's thread: entries become CSV rows, then are appended (or sent)."""
    batch.rows = [row[0].row() if isinstance(row[0], _Entry) else row for row in batch.rows]
    if _uploader is not None and not batch.path.is_absolute():
        _uploader.write(batch)
    else:
        rowsink.append_rows(batch)


_sink: rowsink.Sink | None = None
_lock = threading.Lock()
_destination: rowupload.Destination | None = None
_uploader: rowupload.Uploader | None = None


def send_to(destination: rowupload.Destination | None) -> None:
    """A router pod's way to the control plane, if its spec gives one (at start)."""
    global _destination, _uploader
    _destination = destination
    if destination is not None:
        _uploader = rowupload.Uploader(destination, kind="capture")


def sink() -> rowsink.Sink:
    """The router process's one capture sink (started on first use)."""
    global _sink
    with _lock:
        if _sink is None:
            _sink = rowsink.Sink(capacity=SINK_BYTES, write=_rows)  # weighed in bytes
        return _sink


def close() -> None:
    """Write what the sink holds (the router's shutdown)."""
    global _sink
    with _lock:
        held, _sink = _sink, None
    if held is not None:
        held.close()
