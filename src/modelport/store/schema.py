"""The workspace database's schema, brought to the newest revision whenever a workspace opens.

Opening tells three databases apart, and each ends at the newest revision:

- a new one: every revision runs, the baseline (0001) first;
- one made before migrations (modelport's tables, no ``alembic_version``): the baseline
  records it as revision 0001, creating only tables it lacks, then the rest runs;
- a versioned one: the revisions it lacks run (usually none).

All of it is one transaction that first takes a lock every other opener waits for
(SQLite: ``BEGIN IMMEDIATE``, the database's write lock; PostgreSQL: a transaction-level
advisory lock). Of two processes opening a new workspace at once, one creates the
schema and the other then finds it current.  A database already newer than this
release's revisions is refused rather than used.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import Connection

from modelport.errors import ModelportError

log = logging.getLogger("modelport.store")

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
BASELINE_TABLES = frozenset(
    {
        "environments",
        "model_files",
        "model_versions",
        "scaling_events",
        "services",
        "snapshots",
        "version_counters",
    }
)
_ADVISORY_LOCK = 0x6D6F64656C706F72  # "modelpor": one number for every modelport database
# Alembic's ``context`` and ``op`` are module globals: one migration at a time per process.
_in_process = threading.Lock()


def upgrade(
    engine: Engine, description: str = "the workspace database", revision: str = "head"
) -> None:
    """Bring the schema to the newest revision (see the module docstring); tests name
    an older ``revision`` to make a workspace as an earlier release left it."""
    with _in_process, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        config = _config(connection)
        script = ScriptDirectory.from_config(config)
        newest = script.get_current_head()
        target = newest if revision == "head" else revision
        current = MigrationContext.configure(connection).get_current_revision()
        if current == target:
            return
        known = {r.revision for r in script.walk_revisions()}
        if current is not None and current not in known:
            raise ModelportError(
                f"{description} has schema revision {current!r}, which this release of "
                f"modelport does not know (its newest is {newest!r})",
                hint="open it with the newer modelport that upgraded it",
            )
        done = _what_upgrade_does(connection, current, target)
        command.upgrade(config, revision)
        log.info("%s: %s", description, done)


def _what_upgrade_does(connection: Connection, current: str | None, target: str | None) -> str:
    if current is not None:
        return f"schema upgraded from revision {current} to {target}"
    if set(inspect(connection).get_table_names()) & BASELINE_TABLES:
        return f"schema made before migrations recorded as {BASELINE}, upgraded to {target}"
    return f"schema created at revision {target}"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def draft_revision(message: str) -> None:
    """Write the next revision as Alembic's autogenerate drafts it (for developers)."""
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/draft.db")
        upgrade(engine)
        with engine.begin() as connection:
            config = _config(connection)
            head = ScriptDirectory.from_config(config).get_current_head() or "0"
            command.revision(config, message, autogenerate=True, rev_id=f"{int(head) + 1:04d}")
        engine.dispose()
