"""The request log file of a cluster's routers, kept by the control plane.

Router pods send their request log's lines (``router/requestlog.py``) in batches;
each batch is checked (one JSON object with a ``service`` per line: nothing else
can reach the file ``service requests`` reads) and appended whole under a lock, so
the lines of several pods never interleave.  The file rotates by size as a router
worker's does: ``.1`` is the newest backup, the oldest beyond ``BACKUPS`` goes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from modelport.errors import InvalidInputError
from modelport.home import open_private, rotate

MAX_BYTES = 20 * 1024 * 1024
BACKUPS = 3
_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


def checked_lines(body: bytes) -> str:
    """The batch as text, each line a JSON object naming its service; else why not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"request log lines are UTF-8 ({exc})") from None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"request log line {number} is not JSON ({exc})") from None
        if not (isinstance(doc, dict) and isinstance(doc.get("service"), str)):
            raise InvalidInputError(f"request log line {number} is no request of a service")
    return "".join(f"{line}\n" for line in lines)


def append(path: Path, body: bytes) -> None:
    text = checked_lines(body)
    if not text:
        return
    with _lock(path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open_private(path, "a") as out:
            out.write(text)
            size = out.tell()
        if size >= MAX_BYTES:
            rotate(path, BACKUPS)


def _lock(path: Path) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(path, threading.Lock())
