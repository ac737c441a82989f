"""Baseline: the schema as ``create_all`` made it before workspaces had migrations.

A workspace made before migrations already has these tables; it is recorded at this
revision without changes. Such a workspace made by an older release may lack tables
that ``create_all`` would have added on its next start; those are created here, so
every workspace leaves this revision with all of them.

Revision ID: 0001
Revises:
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def table(name: str, *parts: sa.schema.SchemaItem, indexes: tuple[str, ...] = ()) -> None:
        if name in existing:
            return
        op.create_table(name, *parts)
        for column in indexes:
            op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)

    table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_time", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
        indexes=("content_hash", "name"),
    )
    table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("basename", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("framework", sa.String(length=64), nullable=True),
        sa.Column("framework_version", sa.String(length=64), nullable=True),
        sa.Column("created_time", TIME, nullable=False),
        sa.Column("updated_time", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
        indexes=("name",),
    )
    table(
        "scaling_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("from_replicas", sa.BigInteger(), nullable=False),
        sa.Column("to_replicas", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=("service",),
    )
    table(
        "services",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("primary_key", sa.String(length=255), nullable=False),
        sa.Column("secondary_key", sa.String(length=255), nullable=False),
        sa.Column("created_time", TIME, nullable=False),
        sa.Column("updated_time", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    table(
        "snapshots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("basename", sa.String(length=255), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_time", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    table(
        "version_counters",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    table(
        "model_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        indexes=("model_id", "sha256"),
    )


def downgrade() -> None:
    for name in (
        "model_files",
        "version_counters",
        "snapshots",
        "services",
        "scaling_events",
        "model_versions",
        "environments",
    ):
        op.drop_table(name)
