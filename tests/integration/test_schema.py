"""The workspace schema and its migrations, over each backend (the ``database_url`` fixture).

The tables in ``store/tables.py`` and what the migrations build must not differ; a
workspace made before migrations, or at an older revision, opens with everything in
it intact; processes opening one new workspace together all succeed.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from modelport.errors import ModelportError
from modelport.spec.endpoint import Version
from modelport.spec.environment import EnvironmentSpec, pip_environment_document
from modelport.spec.model import ModelFile, ModelRegistration
from modelport.store import schema
from modelport.store.blobs import BlobStore
from modelport.store.computes import ComputeTargetStore
from modelport.store.database import Database
from modelport.store.endpoints import EndpointStore
from modelport.store.environments import EnvironmentRegistry
from modelport.store.models import ModelRegistry
from modelport.store.secrets import SecretBox, is_sealed
from modelport.store.services import ServiceStore, create_in
from modelport.store.tables import Base

ROOT = Path(__file__).resolve().parents[2]
HEAD = "0004"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def _revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _differences(db: Database) -> list[Any]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _made_before_migrations(db: Database, without: tuple[str, ...] = ()) -> None:
    """The workspace as ``create_all`` of a release before migrations left it."""
    names = sorted(schema.BASELINE_TABLES - set(without))
    Base.metadata.create_all(db.engine, tables=[Base.metadata.tables[n] for n in names])


def _fill(db: Database, tmp_path: Path) -> dict[str, Any]:
    """Models, an environment and services with keys, as a user's workspace holds them."""
    models = ModelRegistry(db, BlobStore(tmp_path / "artifacts"))
    digest, size = models.blobs.put_stream(io.BytesIO(b"weights"))
    files = [ModelFile(path="m/w.bin", sha256=digest, size=size)]
    reg = ModelRegistration(
        name="m", kind="folder", basename="m", files=files, tags={"stage": "dev"}
    )
    ids = [models.register(reg).id for _ in range(2)]
    env, _ = EnvironmentRegistry(db).register(
        EnvironmentSpec.from_document(pip_environment_document("sk", "scikit-learn==1.5.2\n"))
    )
    services = ServiceStore(db)
    spec = {"models": [ids[1]], "deploymentConfig": {"computeType": "AKS", "numReplicas": 2}}
    # Through the services table alone, as the release that made this schema wrote it.
    with db.transaction() as session:
        create_in(session, "svc", spec, ("primary-key-1", "secondary-key-1"), overwrite=False)
        create_in(session, "other", {"models": [ids[0]]}, (None, None), overwrite=False)
    return {
        "models": [models.get("m", v).to_dict() for v in (1, 2)],
        "environment": env.to_dict(),
        "services": services.list(),
    }


def _contents(db: Database, tmp_path: Path) -> dict[str, Any]:
    models = ModelRegistry(db, BlobStore(tmp_path / "artifacts"))
    return {
        "models": [models.get("m", v).to_dict() for v in (1, 2)],
        "environment": EnvironmentRegistry(db).get("sk").to_dict(),
        "services": ServiceStore(db).list(),
    }


def test_a_new_database_gets_every_revision_and_exactly_the_tables(db: Database) -> None:
    db.upgrade_schema()
    assert _revision(db) == HEAD
    assert _differences(db) == []
    db.upgrade_schema()  # a second opening finds it current
    assert _revision(db) == HEAD


def test_a_workspace_made_before_migrations_opens_with_everything_intact(
    db: Database, tmp_path: Path
) -> None:
    _made_before_migrations(db)
    before = _fill(db, tmp_path)
    db.upgrade_schema()
    assert _revision(db) == HEAD
    assert _differences(db) == []
    assert "compute_targets" in inspect(db.engine).get_table_names()
    after = _contents(db, tmp_path)
    assert after == before
    svc = next(s for s in after["services"] if s.name == "svc")
    assert (svc.primary_key, svc.secondary_key) == ("primary-key-1", "secondary-key-1")


def test_a_workspace_at_the_baseline_revision_opens_with_everything_intact(
    db: Database, tmp_path: Path
) -> None:
    schema.upgrade(db.engine, revision=schema.BASELINE)
    assert _revision(db) == schema.BASELINE
    before = _fill(db, tmp_path)
    db.upgrade_schema()
    assert _revision(db) == HEAD
    assert _contents(db, tmp_path) == before
    assert _differences(db) == []
    assert "compute_targets" in inspect(db.engine).get_table_names()


def test_a_workspace_before_endpoints_opens_intact_and_takes_endpoint_versions(
    db: Database, tmp_path: Path
) -> None:
    """Revision 0002 (no endpoints, 64-character service names) to the newest: models,
    services and keys intact; a version's 65-character service name then fits."""
    schema.upgrade(db.engine, revision="0002")
    before = _fill(db, tmp_path)
    db.upgrade_schema()
    assert _revision(db) == HEAD
    assert _contents(db, tmp_path) == before
    assert _differences(db) == []
    spec = {"models": ["m:2"], "deploymentConfig": {"computeType": "AKS"}}
    EndpointStore(db).create("e" * 32, {}, (None, None), Version("v" * 32), spec)
    assert ServiceStore(db).get(f"{'e' * 32}.{'v' * 32}").spec["endpoint"] == "e" * 32


def _plaintext(db: Database, sql: str, **values: Any) -> None:
    """Write as the release at 0003 did: the secrets as they are."""
    with db.engine.begin() as connection:
        connection.execute(text(sql), values)


def test_a_workspace_at_0003_opens_intact_with_its_secrets_sealed(
    db: Database, tmp_path: Path
) -> None:
    """Revision 0003 kept keys and kubeconfigs in plaintext: after the upgrade they read
    back equal, the database holds them sealed, and another sealing key opens none."""
    schema.upgrade(db.engine, revision="0003")
    _fill(db, tmp_path)
    spec = {"models": ["m:2"], "deploymentConfig": {"computeType": "AKS"}}
    EndpointStore(db).create("ep", {}, ("ep-primary-1", "ep-secondary-1"), Version("v1"), spec)
    before = _contents(db, tmp_path)
    _plaintext(
        db,
        "UPDATE services SET primary_key = :p, secondary_key = :s WHERE name = 'svc'",
        p="primary-key-1",
        s="secondary-key-1",
    )
    _plaintext(
        db,
        "UPDATE endpoints SET primary_key = :p, secondary_key = :s",
        p="ep-primary-1",
        s="ep-secondary-1",
    )
    now = "2026-12-01 08:00:00"
    _plaintext(
        db,
        "INSERT INTO compute_targets (name, kind, cluster_purpose, namespace, context, server,"
        " kubeconfig, provisioning_state, created_time, updated_time) VALUES ('k', 'AKS',"
        " 'DevTest', 'ns', 'ctx', 'https://k:6443', :kc, 'Succeeded', :t, :t)",
        kc="apiVersion: v1\nusers: [{token: cluster-secret}]",
        t=now,
    )
    db.upgrade_schema()
    assert _revision(db) == HEAD and _differences(db) == []
    assert _contents(db, tmp_path) == before
    svc = ServiceStore(db).get("svc")
    assert (svc.primary_key, svc.secondary_key) == ("primary-key-1", "secondary-key-1")
    endpoint = EndpointStore(db).get("ep")
    assert (endpoint.primary_key, endpoint.secondary_key) == ("ep-primary-1", "ep-secondary-1")
    assert "cluster-secret" in ComputeTargetStore(db).get("k").kubeconfig
    with db.engine.connect() as connection:
        raw = [
            *connection.execute(text("SELECT primary_key, secondary_key FROM services")),
            *connection.execute(text("SELECT primary_key, secondary_key FROM endpoints")),
            *connection.execute(text("SELECT kubeconfig FROM compute_targets")),
        ]
    stored = " ".join(v for row in raw for v in row)
    for secret in ("primary-key-1", "secondary-key-1", "ep-primary-1", "cluster-secret"):
        assert secret not in stored
    assert all(is_sealed(v) for row in raw for v in row)
    # The database alone (another workspace's sealing key) opens no secret.
    stranger = Database(db.url, SecretBox.ephemeral())
    try:
        with pytest.raises(ModelportError, match="does not open"):
            ServiceStore(stranger).get("svc")
    finally:
        stranger.dispose()


def test_a_table_an_older_release_never_made_is_created_when_recording_it(
    db: Database,
) -> None:
    _made_before_migrations(db, without=("scaling_events", "snapshots"))
    db.upgrade_schema()
    assert {"scaling_events", "snapshots"} <= set(inspect(db.engine).get_table_names())
    assert _differences(db) == []


def test_a_database_newer_than_this_release_is_refused(db: Database) -> None:
    db.upgrade_schema()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ModelportError, match="schema revision '9999', which this release"):
        db.upgrade_schema()


_OPENER = """
import sys
from modelport.store.database import Database
db = Database(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
db.upgrade_schema()
print("opened", flush=True)
"""


def test_processes_opening_one_new_workspace_together_all_succeed(database_url: str) -> None:
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    try:
        for proc in openers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in openers:  # all start their upgrade at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in openers]
    finally:
        for proc in openers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(openers, results, strict=True):
        assert proc.returncode == 0 and out.strip() == "opened", err
    db = Database(database_url)
    try:
        assert _revision(db) == HEAD and _differences(db) == []
    finally:
        db.dispose()
