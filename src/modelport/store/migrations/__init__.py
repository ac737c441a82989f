"""Alembic migrations of the workspace database, run by :mod:`modelport.store.schema`.

Every change to a table in :mod:`modelport.store.tables` comes with a revision here;
``tests/integration/test_schema.py`` fails when the tables and the migrations differ.
To write one, make the change in ``tables.py``, then let Alembic draft the revision
against a database at the current head (and read what it drafted)::

    python -c "from modelport.store import schema; schema.draft_revision('add x to y')"
"""
