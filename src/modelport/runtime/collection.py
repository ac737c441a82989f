"""Where collected model data goes: CSV partitions, written off the request path.

``collect()`` only appends rows to a bounded buffer; a background thread writes them
every ``FLUSH_S`` (sooner when the buffer is half full) into v1's partition layout
under the service's folder (``MODELPORT_MODELDATA_DIR``, set by the compute target):
``<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv``, with an ``<hh>``
folder more under ``AML_MODEL_DC_BOUNDARY=hour``.  A full buffer drops the new rows
and counts them, with a log line, so a slow or stalled disk never blocks or fails a
request.  What the buffer holds is written when the replica exits.

Replicas of one service append to the same files: each write holds an exclusive
``flock`` on the file, so rows never interleave and the header is written once.
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger("modelport.runtime")

DIR_ENV = "MODELPORT_MODELDATA_DIR"
BOUNDARY_ENV = "AML_MODEL_DC_BOUNDARY"
CAPACITY_ENV = "MODELPORT_MODELDATA_BUFFER_ROWS"
CAPACITY = 10_000  # rows held before new ones are dropped
FLUSH_S = 1.0
DROP_LOG_EVERY_S = 10.0
FILE_NAME = "data.csv"


def partition(
    root: Path, model: str, version: str, designation: str, when: datetime, hourly: bool
) -> Path:
    """The file rows collected at ``when`` (UTC) go to."""
    parts = [model, version, designation, f"{when:%Y}", f"{when:%m}", f"{when:%d}"]
    if hourly:
        parts.append(f"{when:%H}")
    return root.joinpath(*parts) / FILE_NAME


@dataclass
class Rows:
    path: Path
    header: tuple[str, ...]
    rows: list[list[object]]


def append_rows(batch: Rows) -> None:
    """Append ``batch`` to its file, with the header first in a new file."""
    batch.path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows(batch.rows)
    with batch.path.open("a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        if f.seek(0, os.SEEK_END) == 0:
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(batch.header)
            f.write(header.getvalue())
        f.write(text.getvalue())


class Sink:
    """A bounded buffer of rows and the thread that writes them (``write`` per batch)."""

    def __init__(
        self,
        capacity: int = CAPACITY,
        flush_s: float = FLUSH_S,
        write: Callable[[Rows], None] = append_rows,
    ) -> None:
        self.capacity = capacity
        self.flush_s = flush_s
        self._write = write
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[Rows] = []
        self._held = 0  # rows in _pending and in the batch being written
        self._stopping = False
        self._drop_logged = 0.0
        self.written = 0
        self.dropped = 0
        self.failed = 0  # rows lost to a write that raised (disk full, permissions)
        self._thread = threading.Thread(target=self._run, name="model-data", daemon=True)
        self._thread.start()

    def put(self, path: Path, header: Sequence[str], rows: list[list[object]]) -> bool:
        """Hand rows over to be written; False (and counted) when the buffer is full."""
        with self._lock:
            if self._held + len(rows) > self.capacity or self._stopping:
                self.dropped += len(rows)
                now = time.monotonic()
                if now - self._drop_logged >= DROP_LOG_EVERY_S:
                    self._drop_logged = now
                    log.warning(
                        "model data collection: the buffer of %d rows is full (the disk is "
                        "slower than scoring); %d row(s) dropped so far",
                        self.capacity,
                        self.dropped,
                    )
                return False
            self._pending.append(Rows(path, tuple(header), rows))
            self._held += len(rows)
            if self._held * 2 >= self.capacity:
                self._wake.notify()
            return True

    def flush(self) -> None:
        """Write what is held now, on the caller's thread (tests, and at exit)."""
        self._drain()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)
        self._drain()
        if self.written or self.dropped or self.failed:
            log.info(
                "model data collection: %d row(s) written, %d dropped, %d lost to write errors",
                self.written,
                self.dropped,
                self.failed,
            )

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._stopping:
                    self._wake.wait(self.flush_s)
                stopping = self._stopping
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, []
        # One write per file: rows of the same file and header in one append.
        merged: dict[tuple[Path, tuple[str, ...]], Rows] = {}
        for b in batches:
            into = merged.setdefault((b.path, b.header), Rows(b.path, b.header, []))
            into.rows.extend(b.rows)
        for batch in merged.values():
            try:
                self._write(batch)
                written, failed = len(batch.rows), 0
            except OSError as exc:
                log.error("model data collection: cannot write %s: %s", batch.path, exc)
                written, failed = 0, len(batch.rows)
            with self._lock:
                self._held -= len(batch.rows)
                self.written += written
                self.failed += failed


_shared: Sink | None = None
_shared_lock = threading.Lock()


def current_sink() -> Sink | None:
    """The sink if anything collected yet (for counting: never makes one)."""
    return _shared


def shared_sink() -> Sink:
    """The replica's one sink, written out when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            capacity = int(os.environ.get(CAPACITY_ENV) or CAPACITY)
            _shared = Sink(capacity)
            atexit.register(_shared.close)
        return _shared
