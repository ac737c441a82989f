"""Attached compute targets: a name, where its cluster is, and the credentials to reach it.

A record's kubeconfig is kept as carefully as the services' keys: the database is
private to the workspace's owner (0600), ``repr`` leaves it out and so does
:meth:`ComputeTargetRecord.to_dict`, the one shape answers are made from.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelport.errors import ComputeTargetNotFoundError, ConflictError
from modelport.spec.compute import SUCCEEDED, server_address
from modelport.store.database import Database, upsert
from modelport.store.services import services_on_target
from modelport.store.tables import ComputeTargetRow, as_utc, utcnow


@dataclass(frozen=True)
class ComputeTargetRecord:
    name: str
    kind: str
    cluster_purpose: str
    namespace: str
    context: str
    server: str  # the API server's URL; answers show only its host and port
    server_version: str | None
    provisioning_state: str
    provisioning_errors: str | None
    created_time: datetime
    updated_time: datetime
    kubeconfig: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What answers show: everything but the kubeconfig and the server's full URL."""
        return {
            "name": self.name,
            "computeType": self.kind,
            "isAttachedCompute": True,
            "provisioningState": self.provisioning_state,
            "provisioningErrors": self.provisioning_errors,
            "clusterPurpose": self.cluster_purpose,
            "namespace": self.namespace,
            "context": self.context,
            "server": server_address(self.server),
            "serverVersion": self.server_version,
            "createdTime": self.created_time.isoformat(),
            "updatedTime": self.updated_time.isoformat(),
        }


@dataclass(frozen=True)
class Attachment:
    """What attaching stores, once the cluster passed its checks."""

    kind: str
    cluster_purpose: str
    namespace: str
    context: str
    server: str
    server_version: str
    kubeconfig: str = field(repr=False)


def not_found(name: str) -> ComputeTargetNotFoundError:
    return ComputeTargetNotFoundError(
        f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace",
        hint="list them with `modelport compute list`",
    )


def _record(row: ComputeTargetRow) -> ComputeTargetRecord:
    return ComputeTargetRecord(
        row.name,
        row.kind,
        row.cluster_purpose,
        row.namespace,
        row.context,
        row.server,
        row.server_version,
        row.provisioning_state,
        row.provisioning_errors,
        as_utc(row.created_time),
        as_utc(row.updated_time),
        row.kubeconfig,
    )


class ComputeTargetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def attach(self, name: str, target: Attachment) -> ComputeTargetRecord:
        with self.db.transaction() as session:
            now = utcnow()
            inserted = session.execute(
                upsert(session, ComputeTargetRow)
                .values(
                    name=name,
                    kind=target.kind,
                    cluster_purpose=target.cluster_purpose,
                    namespace=target.namespace,
                    context=target.context,
                    server=target.server,
                    server_version=target.server_version,
                    kubeconfig=target.kubeconfig,
                    provisioning_state=SUCCEEDED,
                    provisioning_errors=None,
                    created_time=now,
                    updated_time=now,
                )
                .on_conflict_do_nothing(index_elements=[ComputeTargetRow.name])
                .returning(ComputeTargetRow.name)
            ).first()
            if inserted is None:
                raise already_attached(name)
            return _record(self._row(session, name))

    def get(self, name: str) -> ComputeTargetRecord:
        with self.db.transaction() as session:
            return _record(self._row(session, name))

    def find(self, name: str) -> ComputeTargetRecord | None:
        with self.db.transaction() as session:
            row = session.get(ComputeTargetRow, name)
            return None if row is None else _record(row)

    def list(self) -> builtins.list[ComputeTargetRecord]:
        with self.db.transaction() as session:
            rows = session.scalars(select(ComputeTargetRow).order_by(ComputeTargetRow.name))
            return [_record(r) for r in rows]

    def detach(self, name: str) -> ComputeTargetRecord:
        """Forget a target no service names; the cluster itself is left as it is."""
        with self.db.transaction() as session:
            row = self._row(session, name, lock=True)
            users = services_on_target(session, name)
            if users:
                raise ConflictError(
                    f"compute target {name} is used by service{'s' if len(users) > 1 else ''} "
                    f"{', '.join(users)}; it cannot be detached",
                    hint="delete those services, or deploy them elsewhere, first",
                )
            record = _record(row)
            session.delete(row)
            return record

    @staticmethod
    def _row(session: Session, name: str, lock: bool = False) -> ComputeTargetRow:
        row = session.get(ComputeTargetRow, name, with_for_update=lock)
        if row is None:
            raise not_found(name)
        return row


def already_attached(name: str) -> ConflictError:
    return ConflictError(
        f"a compute target named {name!r} is already attached",
        hint=f"detach it first (`modelport compute detach {name}`), or choose another name",
    )
