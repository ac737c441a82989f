"""Alembic's environment: the connection (and its open transaction) comes from
:func:`modelport.store.schema.upgrade`, so no ``alembic.ini`` is read."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelport.store.tables import Base

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
)
with context.begin_transaction():
    context.run_migrations()
