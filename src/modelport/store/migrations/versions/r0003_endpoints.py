"""Endpoints: versions behind one name, and their events; longer service names for versions.

Revision ID: 0003
Revises: 0002
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A version's service is named <endpoint>.<version>: up to 65 characters.
    with op.batch_alter_table("services") as batch:
        batch.alter_column("name", type_=sa.String(length=80), existing_type=sa.String(length=64))
    with op.batch_alter_table("scaling_events") as batch:
        batch.alter_column(
            "service", type_=sa.String(length=80), existing_type=sa.String(length=64)
        )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("primary_key", sa.String(length=255), nullable=False),
        sa.Column("secondary_key", sa.String(length=255), nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "endpoint_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_endpoint_events_endpoint", "endpoint_events", ["endpoint"])


def downgrade() -> None:
    op.drop_index("ix_endpoint_events_endpoint", table_name="endpoint_events")
    op.drop_table("endpoint_events")
    op.drop_table("endpoints")
    with op.batch_alter_table("scaling_events") as batch:
        batch.alter_column(
            "service", type_=sa.String(length=64), existing_type=sa.String(length=80)
        )
    with op.batch_alter_table("services") as batch:
        batch.alter_column("name", type_=sa.String(length=64), existing_type=sa.String(length=80))
