"""Endpoints: settings, keys and the versions' traffic rules, with each version's service.

Every change of versions happens under the endpoint row's lock, so two changes at once
are applied one after the other and v1's rules (``spec/endpoint.py``) hold for both.
A version's deployment is a service row named ``<endpoint>.<version>``, created,
updated and marked for deletion in the same transaction as the versions list.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modelport.errors import ConflictError, NotFoundError
from modelport.spec import endpoint as rules
from modelport.spec.endpoint import Version
from modelport.store.database import Database
from modelport.store.services import DELETING, checked_key, create_in, new_key, update_spec_in
from modelport.store.tables import EndpointEventRow, EndpointRow, ServiceRow, as_utc, utcnow

ACTIVE = "Active"
KEEP_EVENTS = 1000  # per endpoint; older ones are dropped


@dataclass(frozen=True)
class EndpointRecord:
    name: str
    spec: dict[str, Any]
    versions: tuple[Version, ...]
    state: str
    primary_key: str
    secondary_key: str
    created_time: datetime
    updated_time: datetime
    services: tuple[str, ...] = field(default=())  # the versions' service names

    @property
    def deleting(self) -> bool:
        return self.state == DELETING

    def service(self, version: str) -> str:
        return rules.service_name(self.name, version)


def _record(row: EndpointRow) -> EndpointRecord:
    versions = tuple(Version.from_document(v) for v in row.versions)
    return EndpointRecord(
        row.name,
        dict(row.spec),
        versions,
        row.state,
        row.primary_key,
        row.secondary_key,
        as_utc(row.created_time),
        as_utc(row.updated_time),
        tuple(rules.service_name(row.name, v.name) for v in versions),
    )


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f"Endpoint with name {name} not found in provided workspace")


class EndpointStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        spec: dict[str, Any],
        keys: tuple[str | None, str | None],
        version: Version,
        version_spec: dict[str, Any],
    ) -> EndpointRecord:
        """A new endpoint with its first version (the default and the control)."""
        with self.db.transaction() as session:
            if session.get(ServiceRow, name) is not None:
                raise ConflictError(
                    f"a service named {name!r} already exists",
                    hint="services and endpoints share one set of names",
                )
            if session.get(EndpointRow, name, with_for_update=True) is not None:
                raise ConflictError(
                    f"an endpoint named {name!r} already exists",
                    hint="add a version with modelport endpoint version create",
                )
            versions = rules.add(
                [],
                version.name,
                version.traffic_percentile,
                shadow_percentile=version.shadow_percentile,
            )
            now = utcnow()
            row = EndpointRow(
                name=name,
                spec=spec,
                versions=[v.to_document() for v in versions],
                state=ACTIVE,
                primary_key=checked_key("primary", keys[0] or new_key()),
                secondary_key=checked_key("secondary", keys[1] or new_key()),
                created_time=now,
                updated_time=now,
            )
            session.add(row)
            session.flush()
            self._new_service(session, row, version.name, version_spec)
            return _record(row)

    def add_version(
        self,
        name: str,
        version: str,
        version_spec: dict[str, Any],
        traffic_percentile: int,
        is_default: bool | None,
        is_control: bool | None,
        shadow_percentile: int,
    ) -> EndpointRecord:
        with self.db.transaction() as session:
            row = self._row(session, name)
            versions = rules.add(
                self._versions(row),
                version,
                traffic_percentile,
                is_default,
                is_control,
                shadow_percentile,
            )
            self._new_service(session, row, version, version_spec)
            return self._set_versions(row, versions)

    def update_version(
        self,
        name: str,
        version: str,
        changes: dict[str, Any] | None,
        traffic_percentile: int | None = None,
        is_default: bool | None = None,
        is_control: bool | None = None,
        shadow_percentile: int | None = None,
    ) -> EndpointRecord:
        """New traffic rules for ``version``; with ``changes``, a new generation of its
        deployment too (both or neither)."""
        with self.db.transaction() as session:
            row = self._row(session, name)
            versions = rules.update(
                self._versions(row),
                version,
                traffic_percentile,
                is_default,
                is_control,
                shadow_percentile,
            )
            if changes:
                update_spec_in(session, rules.service_name(name, version), changes)
            return self._set_versions(row, versions)

    def delete_version(self, name: str, version: str) -> EndpointRecord:
        """``version`` leaves the split now; its service is marked for deletion (the
        reconciler drains it once the router no longer deals it requests)."""
        with self.db.transaction() as session:
            row = self._row(session, name)
            versions = rules.delete(self._versions(row), version)
            service = session.get(ServiceRow, rules.service_name(name, version))
            if service is not None:
                service.state = DELETING
                service.updated_time = utcnow()
            return self._set_versions(row, versions)

    def update(self, name: str, changes: dict[str, Any]) -> EndpointRecord:
        with self.db.transaction() as session:
            row = self._row(session, name)
            row.spec = {**row.spec, **changes}
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def set_key(self, name: str, which: str, value: str) -> EndpointRecord:
        checked_key(which, value)
        with self.db.transaction() as session:
            row = self._row(session, name)
            setattr(row, f"{which}_key", value)
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def mark_deleting(self, name: str) -> EndpointRecord:
        """The endpoint and every version's service are marked; it goes once they have."""
        with self.db.transaction() as session:
            row = session.get(EndpointRow, name, with_for_update=True)
            if row is None:
                raise _not_found(name)
            row.state = DELETING
            row.updated_time = utcnow()
            for service in self._services(session, name):
                service.state = DELETING
                service.updated_time = utcnow()
            session.flush()
            return _record(row)

    def remove_if_done(self, name: str) -> bool:
        """Remove a deleted endpoint once none of its versions' services is left."""
        with self.db.transaction() as session:
            row = session.get(EndpointRow, name, with_for_update=True)
            if row is None:
                return True
            if row.state != DELETING or self._services(session, name):
                return False
            session.delete(row)
            session.execute(delete(EndpointEventRow).where(EndpointEventRow.endpoint == name))
            return True

    def get(self, name: str) -> EndpointRecord:
        with self.db.transaction() as session:
            row = session.get(EndpointRow, name)
            if row is None:
                raise _not_found(name)
            return _record(row)

    def find(self, name: str) -> EndpointRecord | None:
        with self.db.transaction() as session:
            row = session.get(EndpointRow, name)
            return None if row is None else _record(row)

    def list(self) -> builtins.list[EndpointRecord]:
        with self.db.transaction() as session:
            rows = session.scalars(select(EndpointRow).order_by(EndpointRow.name))
            return [_record(r) for r in rows]

    # -- events ---------------------------------------------------------------------
    def record_event(self, name: str, kind: str, message: str, data: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            session.add(EndpointEventRow(endpoint=name, kind=kind, message=message, data=data))
            ids = select(EndpointEventRow.id).where(EndpointEventRow.endpoint == name)
            stale = ids.order_by(EndpointEventRow.id.desc()).offset(KEEP_EVENTS)
            session.execute(
                delete(EndpointEventRow).where(EndpointEventRow.id.in_(stale.scalar_subquery()))
            )

    def events(self, name: str) -> builtins.list[dict[str, Any]]:
        stmt = (
            select(EndpointEventRow)
            .where(EndpointEventRow.endpoint == name)
            .order_by(EndpointEventRow.id)
        )
        with self.db.transaction() as session:
            return [
                {
                    "time": as_utc(r.time).isoformat(),
                    "kind": r.kind,
                    "message": r.message,
                    "data": r.data,
                }
                for r in session.scalars(stmt)
            ]

    # -- within a transaction ----------------------------------------------------------
    @staticmethod
    def _row(session: Session, name: str) -> EndpointRow:
        row = session.get(EndpointRow, name, with_for_update=True)
        if row is None:
            raise _not_found(name)
        if row.state == DELETING:
            raise ConflictError(f"endpoint {name!r} is being deleted")
        return row

    @staticmethod
    def _versions(row: EndpointRow) -> builtins.list[Version]:
        return [Version.from_document(v) for v in row.versions]

    @staticmethod
    def _set_versions(row: EndpointRow, versions: builtins.list[Version]) -> EndpointRecord:
        row.versions = [v.to_document() for v in versions]
        row.updated_time = utcnow()
        return _record(row)

    @staticmethod
    def _new_service(
        session: Session, row: EndpointRow, version: str, spec: dict[str, Any]
    ) -> None:
        name = rules.service_name(row.name, version)
        existing = session.get(ServiceRow, name)
        if existing is not None:  # the previous version of that name is still draining
            raise ConflictError(
                f"version {version!r} of endpoint {row.name!r} is still being deleted; "
                "try again shortly"
            )
        create_in(session, name, {**spec, "endpoint": row.name}, (None, None), overwrite=False)

    @staticmethod
    def _services(session: Session, name: str) -> builtins.list[ServiceRow]:
        prefix = rules.service_name(name, "")
        rows = session.scalars(
            select(ServiceRow).where(ServiceRow.name.startswith(prefix, autoescape=True))
        )
        return list(rows)
