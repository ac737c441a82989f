"""The metadata database: SQLite (WAL) by default, PostgreSQL by URL.

Failures of the database itself (read-only, full, gone) leave every transaction as
a storage error naming the database (see :mod:`modelport.store.faults`), and the
next transaction tries again: nothing needs a restart once the cause is fixed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from modelport.errors import InvalidInputError, ModelportError
from modelport.store import schema
from modelport.store.faults import database_fault, os_fault
from modelport.store.secrets import SecretBox, attach

PRIVATE_FILE = 0o600  # the database holds service keys
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
WAL_SWITCH_TIMEOUT_S = 30.0  # as long as the busy timeout other statements get


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def describe(url: URL) -> str:
    """How messages name the database (never with its password)."""
    if url.get_backend_name() == "sqlite":
        return f"the workspace database {url.database or ':memory:'}"
    host = url.host or url.query.get("host") or "the local socket"  # ?host=/dir: a socket
    return f"the workspace database {url.database!r} on {host}:{url.port or 5432}"


class Database:
    def __init__(self, url: str, box: SecretBox | None = None) -> None:
        """``box`` seals the secrets; without one, a SQLite file's folder holds its key
        (as a workspace's does) and any other database gets a key for this process only
        (tools and tests: the server always passes its workspace's box)."""
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.description = describe(parsed)
        file = parsed.get_backend_name() == "sqlite" and parsed.database not in (
            None,
            "",
            ":memory:",
        )
        if file:
            make_private(Path(str(parsed.database)))
        if box is None:
            box = (
                SecretBox.for_workspace(Path(str(parsed.database)).parent)
                if file
                else SecretBox.ephemeral()
            )
        self.box = box
        self.engine = _make_engine(self.url)
        attach(self.engine, box)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_workspace(cls, home: Path, url: str | None) -> Database:
        return cls(url or f"sqlite:///{home / 'workspace.db'}", SecretBox.for_workspace(home))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade_schema(self) -> None:
        """Create the schema, or bring it to the newest revision (:mod:`.schema`)."""
        try:
            schema.upgrade(self.engine, self.description)
        except DBAPIError as exc:
            raise self._fault(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session:
            try:
                with session.begin():
                    yield session
            except ModelportError:
                raise
            except DBAPIError as exc:
                raise self._fault(exc) from exc
            except SQLAlchemyError as exc:
                raise ModelportError(f"{self.description} failed: {exc}") from exc

    def _fault(self, exc: DBAPIError) -> ModelportError:
        fault = database_fault(exc, self.description)
        if fault is not None:
            return fault
        if isinstance(exc, DataError):  # a value the database cannot hold (e.g. NUL, range)
            return InvalidInputError(f"{self.description} refused a value: {_first_line(exc)}")
        return ModelportError(f"{self.description} failed: {_first_line(exc)}")

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().split("\n", 1)[0]


def upsert(session: Session, table: Any) -> PgInsert | SqliteInsert:
    """``INSERT`` with ``ON CONFLICT`` for the session's dialect (both spell it alike)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    return insert(table)


def make_private(path: Path) -> None:
    """Create the SQLite file (and tighten its companions) readable by its owner only.

    SQLite gives the -wal and -shm files the database file's mode when it creates
    them, so a 0600 database keeps them 0600 too; older files are tightened here.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        os.close(fd)
        for candidate in (path, *(Path(f"{path}{s}") for s in SQLITE_COMPANIONS)):
            if candidate.exists() and candidate.stat().st_mode & 0o077:
                candidate.chmod(PRIVATE_FILE)
    except OSError as exc:
        raise os_fault(exc, "open the workspace database", path) from exc


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        event.listen(engine, "checkout", _renew_read_only_connections)
        return engine
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit BEGIN would defer
        # the write lock and let two writers deadlock on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _into_wal(cursor)
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _into_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, again while another process holds the lock it needs:
    switching a new database into WAL takes an exclusive lock, and SQLite answers
    "database is locked" at once there rather than through its busy timeout, so
    processes opening one new workspace together would fail."""
    deadline = time.monotonic() + WAL_SWITCH_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _renew_read_only_connections(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Hand out a read-only PostgreSQL connection once, then open a new one.

    A session keeps the ``default_transaction_read_only`` (or standby) state it was
    opened with, so a pooled connection from a read-only spell would fail writes
    after the database became writable again.  PostgreSQL reports both settings to
    the client (14 and later), so this costs no round trip.
    """
    info = getattr(dbapi_connection, "info", None)
    status = getattr(info, "parameter_status", None)
    if status is None:
        return
    read_only = "on" in (status("default_transaction_read_only"), status("in_hot_standby"))
    if read_only and record.info.get("handed_out"):
        raise DisconnectionError("the connection was opened while the database was read-only")
    record.info["handed_out"] = True
