"""Storage faults: operating-system and database errors that say what failed.

A full disk becomes :class:`InsufficientStorageError` (507); anything else that
keeps the workspace database or the artifact store from working (read-only, gone,
an I/O error, unreachable) becomes :class:`StorageUnavailableError` (503).  Each
names the file or the database and quotes the system's own words, so an operator
knows what to fix; nothing here needs a restart once it is fixed.
"""

from __future__ import annotations

import errno
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from modelport.errors import InsufficientStorageError, StorageUnavailableError

_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = frozenset(
    {
        3,  # PERM
        5,  # BUSY
        6,  # LOCKED
        8,  # READONLY
        10,  # IOERR
        11,  # CORRUPT
        14,  # CANTOPEN
        26,  # NOTADB
    }
)
# PostgreSQL SQLSTATEs (classes are the first two characters).
_PG_DISK_FULL = "53100"
# connection, deadlock or serialisation (try again), resources, operator, system, internal
_PG_UNAVAILABLE_CLASSES = ("08", "40", "53", "57", "58", "XX")
_PG_READ_ONLY = "25006"


def os_fault(exc: OSError, action: str, path: Path | str | None = None) -> StorageUnavailableError:
    """``cannot <action> <path>: <strerror>``, 507 for no space, else 503."""
    where = path if path is not None else exc.filename
    words = exc.strerror or str(exc)
    name = errno.errorcode.get(exc.errno or 0)
    message = f"cannot {action}" + (f" {where}" if where else "") + f": {words}"
    if name:
        message += f" ({name})"
    if exc.errno in _NO_SPACE_ERRNOS:
        return InsufficientStorageError(message, hint="free some space; no restart is needed")
    return StorageUnavailableError(message, hint="fix the cause; no restart is needed")


def database_fault(exc: DBAPIError, database: str) -> StorageUnavailableError | None:
    """The storage fault behind a database error, or None when it is not one."""
    words = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    message = f"{database} failed: {words}"
    kind = _classify(exc)
    if kind == "full":
        return InsufficientStorageError(message, hint="free some space; no restart is needed")
    if kind == "unavailable":
        return StorageUnavailableError(message, hint="fix the cause; no restart is needed")
    return None


def _classify(exc: DBAPIError) -> str | None:
    orig = exc.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF  # extended codes keep the primary in the low byte
        if primary == _SQLITE_FULL:
            return "full"
        return "unavailable" if primary in _SQLITE_UNAVAILABLE else None
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        if state == _PG_DISK_FULL:
            return "full"
        if state == _PG_READ_ONLY or state.startswith(_PG_UNAVAILABLE_CLASSES):
            return "unavailable"
        return None
    # No code at all: the driver lost or never had its connection.
    return "unavailable" if isinstance(exc, OperationalError) else None
