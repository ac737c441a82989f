"""The metadata database: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from modelport.errors import ModelportError, ServerUnavailableError
from modelport.store.tables import Base


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = _make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_workspace(cls, home: Path, url: str | None) -> Database:
        return cls(url or f"sqlite:///{home / 'workspace.db'}")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise ServerUnavailableError(f"cannot open the workspace database: {exc.orig}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session:
            try:
                with session.begin():
                    yield session
            except ModelportError:
                raise
            except OperationalError as exc:
                raise ServerUnavailableError(f"the workspace database failed: {exc.orig}") from exc
            except SQLAlchemyError as exc:
                raise ModelportError(f"the workspace database failed: {exc}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def upsert(session: Session, table: Any) -> PgInsert | SqliteInsert:
    """``INSERT`` with ``ON CONFLICT`` for the session's dialect (both spell it alike)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    return insert(table)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit BEGIN would defer
        # the write lock and let two writers deadlock on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
