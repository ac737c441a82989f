"""Version numbers that never collide, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.orm import Session

from modelport.store.database import upsert
from modelport.store.tables import VersionCounter

T = TypeVar("T")


def next_version(session: Session, kind: str, name: str) -> int:
    """Hand out the next version of ``name`` inside the caller's transaction.

    One upsert that returns the new value: concurrent callers serialise on the
    counter row (PostgreSQL row lock, SQLite write lock), so no two transactions
    get the same number, and a rolled-back registration gives its number back.
    """
    stmt = (
        upsert(session, VersionCounter)
        .values(kind=kind, name=name, last=1)
        .on_conflict_do_update(
            index_elements=[VersionCounter.kind, VersionCounter.name],
            set_={"last": VersionCounter.last + 1},
        )
        .returning(VersionCounter.last)
    )
    return int(session.execute(stmt).scalar_one())


def lock_name(session: Session, kind: str, name: str) -> None:
    """Hold ``name``'s counter row until the caller's transaction ends.

    For decisions that read before they write (is the latest version the same?):
    a second transaction waits here until the first has committed, and then reads
    what it wrote.  The row is made if need be, with nothing handed out yet.
    """
    stmt = (
        upsert(session, VersionCounter)
        .values(kind=kind, name=name, last=0)
        .on_conflict_do_update(
            index_elements=[VersionCounter.kind, VersionCounter.name],
            set_={"last": VersionCounter.last},  # no change, but the row is locked
        )
    )
    session.execute(stmt)


def latest_per_name(records: Sequence[T], name_of: Callable[[T], str]) -> list[T]:
    """The first record of each name from a list ordered by name, newest first."""
    first: dict[str, T] = {}
    for record in records:
        first.setdefault(name_of(record), record)
    return list(first.values())
