"""Services: what each should be (spec + generation) and what it is (state, error)."""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.store.database import Database, upsert
from modelport.store.tables import EndpointRow, ModelVersionRow, ServiceRow, as_utc, utcnow

TRANSITIONING, HEALTHY, UNHEALTHY, FAILED, DELETING = (
    "Transitioning",
    "Healthy",
    "Unhealthy",
    "Failed",
    "Deleting",
)
UNSCHEDULABLE = "Unschedulable"  # v1's: a roll-out whose replicas no node can take yet


MIN_KEY_LENGTH, MAX_KEY_LENGTH = 8, 255  # v1's minimum; the keys' column


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    generation: int
    spec: dict[str, Any]
    state: str
    error: str | None
    primary_key: str
    secondary_key: str
    created_time: datetime
    updated_time: datetime


def _record(row: ServiceRow) -> ServiceRecord:
    return ServiceRecord(
        row.name,
        row.generation,
        dict(row.spec),
        row.state,
        row.error,
        row.primary_key,
        row.secondary_key,
        as_utc(row.created_time),
        as_utc(row.updated_time),
    )


class ServiceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, name: str, spec: dict[str, Any], keys: tuple[str | None, str | None], overwrite: bool
    ) -> ServiceRecord:
        """A new service, or (with ``overwrite``) a new generation of an existing one."""
        with self.db.transaction() as session:
            if session.get(EndpointRow, name) is not None:
                raise ConflictError(
                    f"an endpoint named {name!r} already exists",
                    hint="services and endpoints share one set of names",
                )
            return create_in(session, name, spec, keys, overwrite)

    def update_spec(self, name: str, changes: dict[str, Any]) -> ServiceRecord:
        with self.db.transaction() as session:
            return update_spec_in(session, name, changes)

    def update_metadata(self, name: str, changes: dict[str, Any]) -> ServiceRecord:
        """Tags, properties or description: no new generation, nothing to roll out."""
        with self.db.transaction() as session:
            row = session.get(ServiceRow, name, with_for_update=True)
            if row is None:
                raise NotFoundError(f"Webservice with name {name} not found in provided workspace")
            row.spec = {**row.spec, **changes}
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def set_state(self, name: str, generation: int, state: str, error: str | None) -> None:
        """Record what the reconciler saw, unless a newer generation was asked for meanwhile."""
        with self.db.transaction() as session:
            row = session.get(ServiceRow, name, with_for_update=True)
            if row is None or row.state == DELETING or row.generation != generation:
                return
            if (row.state, row.error) != (state, error):
                row.state, row.error = state, error
                row.updated_time = utcnow()

    def set_key(self, name: str, which: str, value: str) -> ServiceRecord:
        checked_key(which, value)
        with self.db.transaction() as session:
            row = self._row(session, name)
            setattr(row, f"{which}_key", value)
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def mark_deleting(self, name: str) -> ServiceRecord:
        with self.db.transaction() as session:
            row = self._row(session, name)
            row.state = DELETING
            row.updated_time = utcnow()
            session.flush()
            return _record(row)

    def remove(self, name: str) -> None:
        with self.db.transaction() as session:
            row = session.get(ServiceRow, name)
            if row is not None:
                session.delete(row)

    def get(self, name: str) -> ServiceRecord:
        with self.db.transaction() as session:
            return _record(self._row(session, name))

    def find(self, name: str) -> ServiceRecord | None:
        with self.db.transaction() as session:
            row = session.get(ServiceRow, name)
            return None if row is None else _record(row)

    def list(self) -> builtins.list[ServiceRecord]:
        with self.db.transaction() as session:
            return [
                _record(r) for r in session.scalars(select(ServiceRow).order_by(ServiceRow.name))
            ]

    @staticmethod
    def _row(session: Session, name: str) -> ServiceRow:
        """The service's row, locked until the transaction ends (read-modify-write)."""
        row = session.get(ServiceRow, name, with_for_update=True)
        if row is None:
            raise NotFoundError(f"Webservice with name {name} not found in provided workspace")
        return row


def create_in(
    session: Session,
    name: str,
    spec: dict[str, Any],
    keys: tuple[str | None, str | None],
    overwrite: bool,
) -> ServiceRecord:
    """:meth:`ServiceStore.create` within ``session`` (an endpoint adds its versions so)."""
    _hold_models(session, spec)
    now = utcnow()
    # Insert unless the name exists: of two concurrent creates, the second
    # waits for the first and then finds its row (a conflict, not an error).
    inserted = session.execute(
        upsert(session, ServiceRow)
        .values(
            name=name,
            generation=1,
            spec=spec,
            state=TRANSITIONING,
            error=None,
            primary_key=checked_key("primary", keys[0] or new_key()),
            secondary_key=checked_key("secondary", keys[1] or new_key()),
            created_time=now,
            updated_time=now,
        )
        .on_conflict_do_nothing(index_elements=[ServiceRow.name])
        .returning(ServiceRow.name)
    ).first()
    row = ServiceStore._row(session, name)
    if inserted is not None:
        return _record(row)
    if not overwrite:
        raise ConflictError(
            f"a service named {name!r} already exists",
            hint="deploy with --overwrite to replace it",
        )
    if row.state == DELETING:
        raise ConflictError(f"service {name!r} is being deleted; try again shortly")
    row.primary_key = checked_key("primary", keys[0] or row.primary_key)
    row.secondary_key = checked_key("secondary", keys[1] or row.secondary_key)
    row.generation += 1
    row.spec = spec
    row.state = TRANSITIONING
    row.error = None
    row.updated_time = now
    session.flush()
    return _record(row)


def update_spec_in(session: Session, name: str, changes: dict[str, Any]) -> ServiceRecord:
    """:meth:`ServiceStore.update_spec` within ``session``."""
    row = ServiceStore._row(session, name)
    if row.state == DELETING:
        raise ConflictError(f"service {name!r} is being deleted")
    row.spec = {**row.spec, **changes}
    _hold_models(session, row.spec)
    row.generation += 1
    row.state = TRANSITIONING
    row.error = None
    row.updated_time = utcnow()
    session.flush()
    return _record(row)


def services_using(session: Session, model_id: str) -> builtins.list[str]:
    """Names of the services whose spec names the model version ``name:version``."""
    rows = session.execute(select(ServiceRow.name, ServiceRow.spec).order_by(ServiceRow.name))
    return [name for name, spec in rows if model_id in (spec or {}).get("models", [])]


def services_on_target(session: Session, target: str) -> builtins.list[str]:
    """Names of the services that name compute target ``target``: deployed to it, or
    with ``computeTargetName`` in their deployment configuration."""
    rows = session.execute(select(ServiceRow.name, ServiceRow.spec).order_by(ServiceRow.name))
    return [name for name, spec in rows if target in _targets(spec or {})]


def _targets(spec: dict[str, Any]) -> set[str]:
    config = spec.get("deploymentConfig") or {}
    return {t for t in (spec.get("computeTarget"), config.get("computeTargetName")) if t}


def _hold_models(session: Session, spec: dict[str, Any]) -> None:
    """Check the spec's models exist and keep them so until the transaction ends.

    A shared row lock: a concurrent delete of one of them waits for this service
    to be stored, and then sees it (see ``ModelRegistry.delete``).
    """
    for model_id in spec.get("models", []):
        name, _, version = str(model_id).rpartition(":")
        found = session.scalar(
            select(ModelVersionRow.id)
            .where(ModelVersionRow.name == name, ModelVersionRow.version == int(version))
            .with_for_update(read=True)
        )
        if found is None:
            raise NotFoundError(f"model {model_id} not found in the workspace")


def checked_key(which: str, value: str) -> str:
    if not MIN_KEY_LENGTH <= len(value) <= MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"the {which} key must be {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters long "
            f"(got {len(value)} characters)"
        )
    return value
