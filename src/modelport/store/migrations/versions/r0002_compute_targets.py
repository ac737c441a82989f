"""Compute targets: attached Kubernetes clusters.

Revision ID: 0002
Revises: 0001
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_targets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cluster_purpose", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("context", sa.String(length=255), nullable=False),
        sa.Column("server", sa.Text(), nullable=False),
        sa.Column("server_version", sa.String(length=64), nullable=True),
        sa.Column("kubeconfig", sa.Text(), nullable=False),
        sa.Column("provisioning_state", sa.String(length=32), nullable=False),
        sa.Column("provisioning_errors", sa.Text(), nullable=True),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("compute_targets")
