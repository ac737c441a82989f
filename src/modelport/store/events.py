"""Scaling events: why a service's replica count changed ("why we scaled")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from modelport.store.database import Database
from modelport.store.tables import ScalingEventRow, as_utc

KEEP = 1000  # per service; older events are dropped


class ScalingEvents:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, service: str, old: int, new: int, reason: str, inputs: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            session.add(
                ScalingEventRow(
                    service=service,
                    from_replicas=old,
                    to_replicas=new,
                    reason=reason,
                    inputs=inputs,
                )
            )
            ids = select(ScalingEventRow.id).where(ScalingEventRow.service == service)
            stale = ids.order_by(ScalingEventRow.id.desc()).offset(KEEP)
            session.execute(
                delete(ScalingEventRow).where(ScalingEventRow.id.in_(stale.scalar_subquery()))
            )

    def list(self, service: str) -> list[dict[str, Any]]:
        stmt = (
            select(ScalingEventRow)
            .where(ScalingEventRow.service == service)
            .order_by(ScalingEventRow.id)
        )
        with self.db.transaction() as session:
            return [
                {
                    "time": as_utc(r.time).isoformat(),
                    "fromReplicas": r.from_replicas,
                    "toReplicas": r.to_replicas,
                    "reason": r.reason,
                    "inputs": r.inputs,
                }
                for r in session.scalars(stmt)
            ]

    def forget(self, service: str) -> None:
        with self.db.transaction() as session:
            session.execute(delete(ScalingEventRow).where(ScalingEventRow.service == service))
