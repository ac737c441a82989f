"""Token signing keys, scoring clients and workspace settings; secrets sealed at rest.

Service and endpoint keys and attached clusters' kubeconfigs were plaintext: they
are sealed here with the workspace's key (``secrets.key``, beside the database),
which is why their columns become text (a sealed key is longer than 255 characters).

Revision ID: 0004
Revises: 0003
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modelport.store.secrets import box_of, is_sealed

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, primary key, secret columns)
SECRETS = (
    ("services", "name", ("primary_key", "secondary_key")),
    ("endpoints", "name", ("primary_key", "secondary_key")),
    ("compute_targets", "name", ("kubeconfig",)),
)
KEY_TABLES = ("services", "endpoints")


def upgrade() -> None:
    for table in KEY_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("primary_key", "secondary_key"):
                batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(length=255))
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verify_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "scoring_clients",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("secret_digest"),
    )
    op.create_table(
        "workspace_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _rewrite(seal=True)


def downgrade() -> None:
    _rewrite(seal=False)
    op.drop_table("workspace_settings")
    op.drop_table("scoring_clients")
    op.drop_table("signing_keys")
    for table in KEY_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("primary_key", "secondary_key"):
                batch.alter_column(column, type_=sa.String(length=255), existing_type=sa.Text())


def _rewrite(seal: bool) -> None:
    """Seal every plaintext secret (or, going down, open every sealed one)."""
    connection = op.get_bind()
    box = box_of(connection.dialect)
    for name, key, columns in SECRETS:
        table = sa.table(
            name, sa.column(key, sa.String()), *(sa.column(c, sa.Text()) for c in columns)
        )
        for row in connection.execute(sa.select(table)).mappings().all():
            changed = {}
            for column in columns:
                value = row[column]
                if value is None or is_sealed(value) == seal:
                    continue
                changed[column] = box.seal(value) if seal else box.open(value)
            if changed:
                connection.execute(table.update().where(table.c[key] == row[key]).values(**changed))
