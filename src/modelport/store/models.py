"""The model registry: versions, their files, tags and properties."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.spec.model import ModelFile, ModelRegistration
from modelport.store.blobs import BlobStore
from modelport.store.database import Database
from modelport.store.services import services_using
from modelport.store.tables import ModelFileRow, ModelVersionRow, as_utc, utcnow
from modelport.store.versions import latest_per_name, next_version

BLOB_GRACE_S = 3600.0  # uploads younger than this may belong to a registration under way


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: int
    kind: str
    basename: str
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    framework: str | None
    framework_version: str | None
    created_time: datetime
    updated_time: datetime
    files: tuple[ModelFile, ...]

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "basename": self.basename,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
            "modelFramework": self.framework,
            "modelFrameworkVersion": self.framework_version,
            "createdTime": self.created_time.isoformat(),
            "updatedTime": self.updated_time.isoformat(),
            "size": sum(f.size for f in self.files),
            "files": [f.model_dump() for f in self.files],
        }


def _record(row: ModelVersionRow) -> ModelRecord:
    return ModelRecord(
        name=row.name,
        version=row.version,
        kind=row.kind,
        basename=row.basename,
        description=row.description,
        tags=dict(row.tags),
        properties=dict(row.properties),
        framework=row.framework,
        framework_version=row.framework_version,
        created_time=as_utc(row.created_time),
        updated_time=as_utc(row.updated_time),
        files=tuple(ModelFile(path=f.path, sha256=f.sha256, size=f.size) for f in row.files),
    )


class ModelRegistry:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def register(self, reg: ModelRegistration) -> ModelRecord:
        """Create version N+1 from files already in the blob store, all or nothing."""
        reg.check()
        for f in reg.files:
            if not self.blobs.exists(f.sha256):
                raise InvalidInputError(
                    f"the content of {f.path!r} (sha256 {f.sha256}) was not uploaded"
                )
            if self.blobs.size(f.sha256) != f.size:
                raise InvalidInputError(f"{f.path!r} is listed with the wrong size {f.size}")
        with self.db.transaction() as session:
            row = ModelVersionRow(
                name=reg.name,
                version=next_version(session, "model", reg.name),
                kind=reg.kind,
                basename=reg.basename,
                description=reg.description,
                tags=reg.tags,
                properties=reg.properties,
                framework=reg.model_framework,
                framework_version=reg.model_framework_version,
                files=[ModelFileRow(path=f.path, sha256=f.sha256, size=f.size) for f in reg.files],
            )
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        with self.db.transaction() as session:
            return _record(self._row(session, name, version))

    def list(
        self,
        name: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        latest: bool = False,
    ) -> builtins.list[ModelRecord]:
        """Versions matching every filter; a filter value of None matches any value."""
        stmt = select(ModelVersionRow).options(selectinload(ModelVersionRow.files))
        if name is not None:
            stmt = stmt.where(ModelVersionRow.name == name)
        stmt = stmt.order_by(ModelVersionRow.name, ModelVersionRow.version.desc())
        with self.db.transaction() as session:
            rows = session.scalars(stmt).all()
            records = [
                _record(r)
                for r in rows
                if _matches(r.tags, tags or {}) and _matches(r.properties, properties or {})
            ]
        return latest_per_name(records, lambda r: r.name) if latest else records

    def update(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: builtins.list[str] | None = None,
        add_properties: Mapping[str, str] | None = None,
    ) -> ModelRecord:
        """Change description/tags; add properties (a set property never changes)."""
        with self.db.transaction() as session:
            row = self._row(session, name, version, lock=True)  # read-modify-write
            for key, value in (add_properties or {}).items():
                if key in row.properties and row.properties[key] != value:
                    raise ConflictError(
                        f"property {key!r} of model {row.name}:{row.version} is already set to "
                        f"{row.properties[key]!r}; properties cannot be changed once set"
                    )
            row.properties = {**row.properties, **(add_properties or {})}
            tags = {**row.tags, **(add_tags or {})}
            for key in remove_tags or []:
                tags.pop(key, None)
            row.tags = tags
            if description is not None:
                row.description = description
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def delete(self, name: str, version: int) -> ModelRecord:
        """Remove a version no service uses (its lock makes deploys of it wait, then fail)."""
        with self.db.transaction() as session:
            row = self._row(session, name, version, lock=True)
            record = _record(row)
            users = services_using(session, record.id)
            if users:
                raise ConflictError(
                    f"model {record.id} is used by service{'s' if len(users) > 1 else ''} "
                    f"{', '.join(users)}; it cannot be deleted",
                    hint="delete those services, or update them to another model version, first",
                )
            session.delete(row)
        self.collect_garbage()
        return record

    def collect_garbage(self, min_age_s: float = BLOB_GRACE_S) -> int:
        with self.db.transaction() as session:
            referenced = set(session.scalars(select(ModelFileRow.sha256).distinct()))
        return self.blobs.collect_garbage(referenced, min_age_s)

    @staticmethod
    def _row(
        session: Session, name: str, version: int | None, lock: bool = False
    ) -> ModelVersionRow:
        stmt = (
            select(ModelVersionRow)
            .options(selectinload(ModelVersionRow.files))
            .where(ModelVersionRow.name == name)
        )
        if lock:
            stmt = stmt.with_for_update(of=ModelVersionRow)
        if version is None:
            stmt = stmt.order_by(ModelVersionRow.version.desc()).limit(1)
        else:
            stmt = stmt.where(ModelVersionRow.version == version)
        row = session.scalars(stmt).first()
        if row is None:
            what = f"model {name!r}" if version is None else f"model {name}:{version}"
            raise NotFoundError(f"{what} not found in the workspace")
        return row


def _matches(values: Mapping[str, Any], wanted: Mapping[str, str | None]) -> bool:
    return all(k in values and (v is None or values[k] == v) for k, v in wanted.items())
