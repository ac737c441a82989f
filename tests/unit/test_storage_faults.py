"""Which database errors are storage faults, and of which kind (the drivers' own classes)."""

from __future__ import annotations

import sqlite3

import psycopg.errors
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from modelport.errors import InsufficientStorageError, StorageUnavailableError
from modelport.store.faults import database_fault

DB = "the workspace database 'w' on h:5432"


def _sqlite(code: int, message: str) -> DBAPIError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorcode = code  # type: ignore[attr-defined]
    return OperationalError("statement", {}, orig)


def _postgres(sqlstate: str, message: str) -> DBAPIError:
    orig = psycopg.errors.lookup(sqlstate)(message)
    return DBAPIError.instance("statement", {}, orig, psycopg.Error)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_sqlite(13, "database or disk is full"), InsufficientStorageError),
        (_sqlite(8, "attempt to write a readonly database"), StorageUnavailableError),
        (_sqlite(8 | (5 << 8), "readonly database moved"), StorageUnavailableError),
        (_sqlite(778, "disk I/O error"), StorageUnavailableError),  # IOERR_WRITE
        (_sqlite(14, "unable to open database file"), StorageUnavailableError),
        (_sqlite(5, "database is locked"), StorageUnavailableError),
        (_sqlite(1, "no such table: services"), None),  # a bug, not storage
        (_sqlite(19, "UNIQUE constraint failed"), None),
        (_postgres("53100", "could not extend file"), InsufficientStorageError),
        (
            _postgres("25006", "cannot execute INSERT in a read-only transaction"),
            StorageUnavailableError,
        ),
        (_postgres("57P01", "terminating connection"), StorageUnavailableError),
        (_postgres("40P01", "deadlock detected"), StorageUnavailableError),
        (_postgres("08006", "connection failure"), StorageUnavailableError),
        (_postgres("58030", "could not write"), StorageUnavailableError),
        (_postgres("23505", "duplicate key value"), None),
        (_postgres("42P01", "relation does not exist"), None),
    ],
)
def test_database_errors_by_kind(error: DBAPIError, kind: type | None) -> None:
    fault = database_fault(error, DB)
    if kind is None:
        assert fault is None
    else:
        assert type(fault) is kind
        assert fault is not None and fault.message.startswith(f"{DB} failed: ")
        assert str(error.orig) in fault.message


def test_a_lost_connection_without_a_code_is_unavailable() -> None:
    error = OperationalError("statement", {}, psycopg.OperationalError("server closed"))
    assert type(database_fault(error, DB)) is StorageUnavailableError
