"""Reading and following the workspace's log files for the management API.

Two kinds: the router's request logs (``<home>/logs/requests-<worker>.jsonl``,
rotated to ``.1``, ``.2``...; see ``router/requestlog.py``) and the replicas' logs
(``<home>/services/<name>/logs/replica-<generation>-<index>.log``).  ``Tailer``
reads a folder's files to their end, then the lines appended since, across a
rotation (the old file's rest is read before the new one's start).  A replica
line's time is that of the last stamped line at or before it (the runtime's and
the supervisor's lines carry one; a script's prints do not), which orders the
merge and ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from modelport.errors import InvalidInputError

POLL_S = 0.25
Gone = Callable[[], Awaitable[bool]]  # whether the client of a followed stream has left
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STATUS = re.compile(r"^([1-5])(xx|\d\d)$")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_REPLICA = re.compile(r"^replica-(\d+)-(\d+)\.log$")


def since_cutoff(text: str | None) -> float | None:
    """``10m`` (also ``s``, ``h``, ``d``) as the epoch time that long ago; None: no bound."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match is None:
        raise InvalidInputError(
            f"since {text!r} is not a duration", hint="give a number and a unit: 30s, 10m, 2h, 1d"
        )
    return time.time() - int(match.group(1)) * _UNITS[match.group(2)]


def status_filter(text: str | None) -> Callable[[int], bool]:
    """``5xx``, ``4xx``... a class; ``200``, ``503``... one status; None: all."""
    if not text:
        return lambda status: True
    match = _STATUS.match(text.strip().lower())
    if match is None:
        raise InvalidInputError(
            f"status {text!r} is neither a status nor a class", hint="e.g. 5xx, 4xx or 200"
        )
    if match.group(2) == "xx":
        digit = int(match.group(1))
        return lambda status: status // 100 == digit
    wanted = int(text)
    return lambda status: status == wanted


class Tailer:
    """The complete lines of the files ``pattern`` matches in ``folder``: first what they
    hold (``existing``), then what is appended (``poll``), rotation included."""

    def __init__(self, folder: Path, pattern: str) -> None:
        self.folder = folder
        self.pattern = pattern
        self._files: dict[Path, tuple[IO[bytes], int]] = {}
        self._partial: dict[Path, bytes] = {}

    def existing(self) -> dict[Path, list[str]]:
        return self._read_all()

    def poll(self) -> dict[Path, list[str]]:
        return self._read_all()

    def close(self) -> None:
        for f, _ in self._files.values():
            f.close()
        self._files.clear()

    def _read_all(self) -> dict[Path, list[str]]:
        out: dict[Path, list[str]] = {}
        present = set(self.folder.glob(self.pattern)) if self.folder.is_dir() else set()
        for path in sorted(present | set(self._files)):
            lines = self._read(path, path in present)
            if lines:
                out[path] = lines
        return out

    def _read(self, path: Path, present: bool) -> list[str]:
        held = self._files.get(path)
        data = b""
        inode = _inode(path) if present else None
        if held is not None and held[1] != inode:
            data = held[0].read()  # the rotated file's rest, then the new one from its start
            held[0].close()
            del self._files[path]
            held = None
        if held is None and inode is not None:
            try:
                f = path.open("rb")
            except FileNotFoundError:
                f = None
            if f is not None:
                self._files[path] = (f, os.fstat(f.fileno()).st_ino)
                held = self._files[path]
        if held is not None:
            data += held[0].read()
        data = self._partial.pop(path, b"") + data
        complete, sep, rest = data.rpartition(b"\n")
        if rest:
            self._partial[path] = rest
        if not sep:
            return []
        return complete.decode("utf-8", errors="replace").split("\n")


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


# -- request logs -------------------------------------------------------------------
@dataclass(frozen=True)
class RequestQuery:
    service: str
    status: str | None = None
    since: str | None = None
    tail: int | None = None

    def matcher(self) -> Callable[[str], dict[str, Any] | None]:
        """A line's record if it passes; the service test is a substring check first."""
        needle = json.dumps(self.service)  # the quoted name: most lines skip the parse
        wanted = status_filter(self.status)
        cutoff = since_cutoff(self.since)
        after = _iso(cutoff) if cutoff is not None else ""

        def match(line: str) -> dict[str, Any] | None:
            if needle not in line:
                return None
            try:
                doc = json.loads(line)
            except ValueError:
                return None
            if not isinstance(doc, dict) or doc.get("service") != self.service:
                return None
            if not wanted(int(doc.get("status", 0))) or str(doc.get("time", "")) < after:
                return None
            return doc

        return match


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".000Z"


def request_lines(folder: Path, query: RequestQuery, tailer: Tailer) -> list[dict[str, Any]]:
    """The matching requests in the folder, oldest first; ``tailer`` is left at the end."""
    match = query.matcher()
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("requests-*.jsonl.*"), key=_backup_order):
        with path.open(encoding="utf-8", errors="replace") as f:
            found += [doc for line in f if (doc := match(line))]
    for lines in tailer.existing().values():
        found += [doc for line in lines if (doc := match(line))]
    found.sort(key=lambda doc: str(doc.get("time", "")))
    return found[-query.tail :] if query.tail else found


def _backup_order(path: Path) -> tuple[str, int]:
    """Oldest first: per worker, ``.3`` before ``.2`` before ``.1``."""
    stem, _, number = path.name.rpartition(".")
    return stem, -int(number) if number.isdigit() else 0


async def follow_requests(folder: Path, query: RequestQuery, gone: Gone) -> AsyncIterator[bytes]:
    """The matching requests as JSON lines, then each new one as it is written, until
    the client is ``gone``."""
    tailer = Tailer(folder, "requests-*.jsonl")
    try:
        first = await asyncio.to_thread(request_lines, folder, query, tailer)
        if first:
            yield _json_lines(first)
        match = query.matcher()
        # A quiet stream sends nothing, so a client that left is noticed here, not by a
        # failed send.
        while not await gone():
            await asyncio.sleep(POLL_S)
            batch = await asyncio.to_thread(tailer.poll)
            docs = [d for lines in batch.values() for line in lines if (d := match(line))]
            docs.sort(key=lambda d: str(d.get("time", "")))
            if docs:
                yield _json_lines(docs)
    finally:
        tailer.close()


def _json_lines(docs: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(doc) + "\n" for doc in docs).encode()


# -- replica logs -------------------------------------------------------------------
@dataclass(frozen=True)
class LogQuery:
    replica: int | None = None
    since: str | None = None
    tail: int | None = None


class _Stamps:
    """Carries each file's last seen time to the unstamped lines after it."""

    def __init__(self) -> None:
        self.last: dict[Path, float] = {}

    def timed(self, path: Path, lines: Iterable[str]) -> list[tuple[float, str]]:
        last = self.last.get(path, 0.0)
        out = []
        for line in lines:
            match = _STAMP.search(line, 0, 40)
            if match is not None:
                with contextlib.suppress(ValueError):  # a date-like text in a print
                    last = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            out.append((last, line))
        self.last[path] = last
        return out


def _label(path: Path) -> str | None:
    match = _REPLICA.match(path.name)
    return f"replica-{match.group(2)}" if match else None


def _generation(path: Path) -> int:
    match = _REPLICA.match(path.name)
    return int(match.group(1)) if match else -1


def _prefixed(
    batch: dict[Path, list[str]], stamps: _Stamps, query: LogQuery, cutoff: float | None
) -> list[str]:
    """One merged list, ordered by time, each line after its replica's label."""
    streams = []
    for path, lines in batch.items():
        label = _label(path)
        if label is None or (query.replica is not None and label != f"replica-{query.replica}"):
            continue
        timed = stamps.timed(path, lines)
        streams.append([(t, f"[{label}] {line}") for t, line in timed])
    merged = heapq.merge(*streams, key=lambda pair: pair[0])
    return [line for t, line in merged if cutoff is None or t >= cutoff]


def replica_lines(folder: Path, query: LogQuery, tailer: Tailer, stamps: _Stamps) -> list[str]:
    """The newest generation's replica logs merged; ``tailer`` is left at their end."""
    batch = tailer.existing()
    newest = max((_generation(p) for p in batch), default=-1)
    batch = {p: lines for p, lines in batch.items() if _generation(p) == newest}
    lines = _prefixed(batch, stamps, query, since_cutoff(query.since))
    return lines[-query.tail :] if query.tail else lines


def merged_logs(folder: Path, query: LogQuery) -> str:
    tailer = Tailer(folder, "replica-*.log")
    try:
        return "\n".join(replica_lines(folder, query, tailer, _Stamps()))
    finally:
        tailer.close()


async def follow_logs(folder: Path, query: LogQuery, gone: Gone) -> AsyncIterator[bytes]:
    """The merged logs, then each new line as a replica writes it (new replicas too),
    until the client is ``gone``."""
    tailer, stamps = Tailer(folder, "replica-*.log"), _Stamps()
    try:
        first = await asyncio.to_thread(replica_lines, folder, query, tailer, stamps)
        if first:
            yield ("\n".join(first) + "\n").encode()
        # A quiet stream sends nothing, so a client that left is noticed here, not by a
        # failed send.
        while not await gone():
            await asyncio.sleep(POLL_S)
            batch = await asyncio.to_thread(tailer.poll)
            lines = _prefixed(batch, stamps, query, None)
            if lines:
                yield ("\n".join(lines) + "\n").encode()
    finally:
        tailer.close()
