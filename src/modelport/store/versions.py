"""Version numbers that never collide, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from modelport.store.tables import VersionCounter

T = TypeVar("T")


def next_version(session: Session, kind: str, name: str) -> int:
    """Hand out the next version of ``name`` inside the caller's transaction.

    One upsert that returns the new value: concurrent callers serialise on the
    counter row (PostgreSQL row lock, SQLite write lock), so no two transactions
    get the same number, and a rolled-back registration gives its number back.
    """
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    stmt = (
        insert(VersionCounter)
        .values(kind=kind, name=name, last=1)
        .on_conflict_do_update(
            index_elements=[VersionCounter.kind, VersionCounter.name],
            set_={"last": VersionCounter.last + 1},
        )
        .returning(VersionCounter.last)
    )
    return int(session.execute(stmt).scalar_one())


def latest_per_name(records: Sequence[T], name_of: Callable[[T], str]) -> list[T]:
    """The first record of each name from a list ordered by name, newest first."""
    first: dict[str, T] = {}
    for record in records:
        first.setdefault(name_of(record), record)
    return list(first.values())
