"""One JSON line per scoring request, written off the event loop.

The hot path appends a small ``Entry`` (references and numbers, nothing formatted)
to a deque; a writer thread wakes every ``FLUSH_S``, formats the batch and writes
it to ``requests-<worker>.jsonl`` in the log folder, rotating by size; a router
pod on a cluster sends the lines to the control plane instead, every second, which
keeps them beside those of this machine's router (``rowupload.py``).  A full
buffer (the disk or the control plane cannot keep up) drops entries and counts
them, never blocks a request.  A line holds no credential, query string or body:
the service, version, status, times, replica, sizes and the two request ids.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from modelport.home import open_private, rotate
from modelport.httpserver import Response
from modelport.rowupload import Destination, Uploader

log = logging.getLogger("modelport.router")

FLUSH_S = 0.1
SEND_S = 1.0  # how often a router pod sends its lines
MAX_BUFFERED = 20_000  # entries waiting for the writer; past it they are dropped
MAX_BYTES = 20 * 1024 * 1024
BACKUPS = 3
Headers = list[tuple[bytes, bytes]]


class Entry:
    """A request's details known before its answer (queue wait, replica); short-lived."""

    __slots__ = ("bytes_in", "replica", "request_headers", "route", "waited_s")

    def __init__(self, route: str, request_headers: Headers, bytes_in: int) -> None:
        self.route = route
        self.request_headers = request_headers
        self.bytes_in = bytes_in
        self.waited_s = 0.0
        self.replica: tuple[str, int] | None = None


# What waits for the writer: time, route, status, latency s, queue wait s, replica,
# bytes in, bytes out, request id, client request id.  Plain values only, so the
# cyclic garbage collector stops tracking the tuples and thousands of buffered ones
# cost its collections nothing (holding the header lists did).
Line = tuple[
    float, str, int, float, float, tuple[str, int] | None, int, int, bytes | None, bytes | None
]


class RequestLog:
    """The buffer (``add``, on the loop) and its writer thread (``start``/``close``)."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        max_buffered: int = MAX_BUFFERED,
        send: Callable[[bytes], None] | None = None,
    ) -> None:
        self.path = path
        self._send = send  # instead of the file: a router pod's way to the control plane
        self.flush_s = FLUSH_S if send is None else SEND_S
        self.max_bytes = max_bytes
        self.backups = backups
        self.max_buffered = max_buffered
        self.dropped = 0
        # route name -> (endpoint, version) for an endpoint's versions; set per table.
        self.versions: dict[str, tuple[str, str]] = {}
        self._queue: deque[Line] = deque()  # append and popleft are thread-safe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._file: IO[str] | None = None
        self._format = Formatter()

    def add(self, entry: Entry, response: Response, latency_s: float) -> None:
        """The hot path's one call: two short header scans, a tuple and an append."""
        if len(self._queue) >= self.max_buffered:
            self.dropped += 1
            return
        # The replica's answer carries the id it used (its own when the client sent none).
        request_id = client_id = None
        for key, value in response.headers:
            if key == b"x-request-id":
                request_id = value
            elif key == b"x-ms-client-request-id":
                client_id = value
        if request_id is None or client_id is None:  # the router answered, or no client id
            for key, value in entry.request_headers:
                if key == b"x-request-id" and request_id is None:
                    request_id = value
                elif key == b"x-ms-client-request-id":
                    client_id = value
        self._queue.append(
            (
                time.time(),
                entry.route,
                response.status,
                latency_s,
                entry.waited_s,
                entry.replica,
                entry.bytes_in,
                len(response.body),
                request_id,
                client_id,
            )
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Write what is buffered and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self._flush()
            except OSError as exc:  # a full or gone disk must not end the router
                log.error("cannot write the request log %s: %s", self.path, exc)

    def _flush(self) -> None:
        queue = self._queue
        if not queue:
            return
        lines = []
        while queue:
            lines.append(self._format.line(queue.popleft(), self.versions))
        if self.dropped:
            log.warning("request log: %d lines dropped (buffer full)", self.dropped)
            self.dropped = 0
        if self._send is not None:
            self._send("".join(lines).encode())
            return
        out = self._open()
        out.write("".join(lines))
        out.flush()
        if out.tell() >= self.max_bytes:
            self._rotate()

    def _open(self) -> IO[str]:
        if self._file is None:
            self._file = open_private(self.path, "a")
        return self._file

    def _rotate(self) -> None:
        """``requests-0.jsonl`` becomes ``.1``, ``.1`` becomes ``.2``...; the last is dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None
        rotate(self.path, self.backups)


class Formatter:
    """Entries as JSON lines, built by hand: ``json.dumps`` of a dict costs several
    times more, and the writer thread shares the router's one core."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def line(self, line: Line, versions: dict[str, tuple[str, str]]) -> str:
        epoch, route, status, latency_s, waited_s, replica, bytes_in, bytes_out, rid, cid = line
        service, version = versions.get(route, (route, None))
        where = f'"{replica[0]}:{replica[1]}"' if replica else "null"
        return (
            f'{{"time":"{self._time(epoch)}","service":{_text(service)},'
            f'"version":{_text(version)},"status":{status},'
            f'"latencyMs":{latency_s * 1000:.3f},"queueWaitMs":{waited_s * 1000:.3f},'
            f'"replica":{where},"bytesIn":{bytes_in},"bytesOut":{bytes_out},'
            f'"requestId":{_id(rid)},"clientRequestId":{_id(cid)}}}\n'
        )

    def _time(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:  # one strftime a second, not one a line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(epoch * 1000) % 1000:03d}Z"


def _text(value: str | None) -> str:
    """A JSON string; ids come from clients, so anything unusual goes through json."""
    if value is None:
        return "null"
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


def _id(value: bytes | None) -> str:
    return "null" if value is None else _text(value.decode("latin-1"))


def from_environment(ingest: Destination | None = None) -> RequestLog | None:
    """``MODELPORT_ROUTER_REQUEST_LOG``: the folder for this worker's file (unset: off),
    or ``send`` there: the lines go to the control plane through ``ingest``."""
    folder = os.environ.get("MODELPORT_ROUTER_REQUEST_LOG")
    if not folder:
        return None
    if folder == "send":
        if ingest is None:
            log.warning("request log: no way to the control plane is given; it is off")
            return None
        uploader = Uploader(ingest)
        return RequestLog(Path(folder), send=lambda body: uploader.send("requests", body))
    worker = os.environ.get("MODELPORT_ROUTER_WORKER", "0")
    return RequestLog(Path(folder) / f"requests-{worker}.jsonl")
