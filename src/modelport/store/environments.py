"""The environment registry: named, versioned environments with their content hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from modelport.errors import NotFoundError
from modelport.spec.environment import EnvironmentSpec
from modelport.store.database import Database
from modelport.store.tables import EnvironmentRow, as_utc
from modelport.store.versions import latest_per_name, lock_name, next_version


@dataclass(frozen=True)
class EnvironmentRecord:
    spec: EnvironmentSpec
    version: int
    content_hash: str
    created_time: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "version": str(self.version),
            "contentHash": self.content_hash,
            "createdTime": self.created_time.isoformat(),
            "definition": self.spec.to_document(redact=True),
        }


def _record(row: EnvironmentRow) -> EnvironmentRecord:
    spec = EnvironmentSpec.model_validate(row.definition)
    return EnvironmentRecord(spec, row.version, row.content_hash, as_utc(row.created_time))


class EnvironmentRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, spec: EnvironmentSpec) -> tuple[EnvironmentRecord, bool]:
        """Register a new version unless the latest one has the same content (as v1)."""
        digest = spec.content_hash()
        with self.db.transaction() as session:
            lock_name(session, "environment", spec.name)  # concurrent twins see each other
            latest = session.scalars(
                select(EnvironmentRow)
                .where(EnvironmentRow.name == spec.name)
                .order_by(EnvironmentRow.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.content_hash == digest:
                return _record(latest), False
            version = next_version(session, "environment", spec.name)
            stored = spec.model_copy(update={"version": str(version)})
            row = EnvironmentRow(
                name=spec.name,
                version=version,
                definition=stored.model_dump(by_alias=True, mode="json"),
                content_hash=digest,
            )
            session.add(row)
            session.flush()
            return _record(row), True

    def get(self, name: str, version: int | None = None) -> EnvironmentRecord:
        stmt = select(EnvironmentRow).where(EnvironmentRow.name == name)
        if version is None:
            stmt = stmt.order_by(EnvironmentRow.version.desc()).limit(1)
        else:
            stmt = stmt.where(EnvironmentRow.version == version)
        with self.db.transaction() as session:
            row = session.scalars(stmt).first()
            if row is None:
                what = (
                    f"environment {name!r}" if version is None else f"environment {name}:{version}"
                )
                raise NotFoundError(f"{what} not found in the workspace")
            return _record(row)

    def list(self, name: str | None = None, latest: bool = False) -> list[EnvironmentRecord]:
        stmt = select(EnvironmentRow).order_by(EnvironmentRow.name, EnvironmentRow.version.desc())
        if name is not None:
            stmt = stmt.where(EnvironmentRow.name == name)
        with self.db.transaction() as session:
            records = [_record(r) for r in session.scalars(stmt)]
        return latest_per_name(records, lambda r: r.spec.name) if latest else records
