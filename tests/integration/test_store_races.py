"""Concurrent writers against each backend: what SQLite serialises, PostgreSQL must lock.

Every test starts its threads together (``run_concurrently``) on a fresh database of
each backend (the ``database_url`` fixture) and checks the invariant the store
promises, whatever order the transactions ran in.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from modelport.errors import ConflictError, ModelportError, NotFoundError
from modelport.spec.environment import EnvironmentSpec, pip_environment_document
from modelport.spec.model import ModelFile, ModelRegistration
from modelport.store.blobs import BlobStore
from modelport.store.database import Database
from modelport.store.environments import EnvironmentRegistry
from modelport.store.models import ModelRegistry
from modelport.store.services import DELETING, HEALTHY, TRANSITIONING, ServiceStore
from modelport.store.snapshots import SnapshotStore
from tests.conftest import run_concurrently

T = TypeVar("T")
THREADS = 10


@dataclass
class Store:
    db: Database
    models: ModelRegistry
    services: ServiceStore
    environments: EnvironmentRegistry


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    db = Database(database_url)
    db.upgrade_schema()
    models = ModelRegistry(db, BlobStore(tmp_path / "artifacts"))
    yield Store(db, models, ServiceStore(db), EnvironmentRegistry(db))
    db.dispose()


def _model(store: Store, name: str = "m") -> str:
    digest, size = store.models.blobs.put_stream(io.BytesIO(b"weights"))
    files = [ModelFile(path="m.bin", sha256=digest, size=size)]
    reg = ModelRegistration(name=name, kind="file", basename="m.bin", files=files)
    return store.models.register(reg).id


def _spec(model_id: str, **extra: Any) -> dict[str, Any]:
    return {"models": [model_id], "deploymentConfig": {"computeType": "aks"}, **extra}


def _outcome(task: Callable[[], T]) -> Callable[[], T | ModelportError]:
    """The task's result, or the modelport error it raised (run_concurrently fails on any)."""

    def run() -> T | ModelportError:
        try:
            return task()
        except ModelportError as exc:
            return exc

    return run


def test_concurrent_spec_updates_each_get_their_own_generation(store: Store) -> None:
    store.services.create("svc", _spec(_model(store)), (None, None), overwrite=False)
    records = run_concurrently(lambda: store.services.update_spec("svc", {"x": 1}), THREADS)
    assert sorted(r.generation for r in records) == list(range(2, THREADS + 2))
    assert store.services.get("svc").generation == THREADS + 1


def test_concurrent_creates_of_one_name_give_one_service_and_conflicts(store: Store) -> None:
    spec = _spec(_model(store))
    outcomes = run_concurrently(
        _outcome(lambda: store.services.create("svc", spec, (None, None), overwrite=False)),
        THREADS,
    )
    errors = [o for o in outcomes if isinstance(o, ModelportError)]
    assert len(outcomes) - len(errors) == 1
    assert all(type(e) is ConflictError for e in errors), errors
    assert store.services.get("svc").generation == 1


def test_concurrent_overwrites_each_get_their_own_generation(store: Store) -> None:
    spec = _spec(_model(store))
    records = run_concurrently(
        lambda: store.services.create("svc", spec, (None, None), overwrite=True), THREADS
    )
    assert sorted(r.generation for r in records) == list(range(1, THREADS + 1))
    assert len({(r.primary_key, r.secondary_key) for r in records}) == 1  # keys kept


def test_identical_environments_registered_together_are_one_version(store: Store) -> None:
    doc = pip_environment_document("sk", "scikit-learn==1.5.2\n")
    outcomes = run_concurrently(
        lambda: store.environments.register(EnvironmentSpec.from_document(doc)), THREADS
    )
    assert sorted(record.version for record, _ in outcomes) == [1] * THREADS
    assert [created for _, created in outcomes].count(True) == 1
    assert [r.version for r in store.environments.list("sk")] == [1]


def test_different_environments_registered_together_get_distinct_versions(store: Store) -> None:
    def register(i: int) -> int:
        doc = pip_environment_document("sk", f"package-{i}\n")
        return store.environments.register(EnvironmentSpec.from_document(doc))[0].version

    counter = iter(range(THREADS))
    versions = run_concurrently(lambda: register(next(counter)), THREADS)
    assert sorted(versions) == list(range(1, THREADS + 1))


def test_delete_racing_updates_always_ends_deleting(store: Store) -> None:
    """An update never overwrites Deleting, and each update that succeeded counts."""
    store.services.create("svc", _spec(_model(store)), (None, None), overwrite=False)
    jobs = iter(["delete"] + ["update"] * (THREADS - 1))

    def job() -> str:
        if next(jobs) == "delete":
            store.services.mark_deleting("svc")
            return "deleted"
        store.services.update_spec("svc", {"x": 1})
        return "updated"

    outcomes = run_concurrently(_outcome(job), THREADS)
    refused = [o for o in outcomes if isinstance(o, ModelportError)]
    assert all(type(e) is ConflictError for e in refused), refused
    final = store.services.get("svc")
    assert final.state == DELETING
    assert final.generation == 1 + outcomes.count("updated")


def test_stale_state_never_lands_on_a_newer_generation(store: Store) -> None:
    """The reconciler's report for generation 1 is dropped once generation 2 exists."""
    store.services.create("svc", _spec(_model(store)), (None, None), overwrite=False)
    jobs = iter(["state"] * (THREADS // 2) + ["update"] * (THREADS - THREADS // 2))

    def job() -> None:
        if next(jobs) == "state":
            store.services.set_state("svc", 1, HEALTHY, None)
        else:
            store.services.update_spec("svc", {"x": 1})

    run_concurrently(job, THREADS)
    final = store.services.get("svc")
    assert final.generation == 1 + THREADS - THREADS // 2
    assert final.state == TRANSITIONING


def test_key_changes_racing_updates_lose_nothing(store: Store) -> None:
    store.services.create("svc", _spec(_model(store)), (None, None), overwrite=False)
    counter = iter(range(THREADS))

    def job() -> None:
        i = next(counter)
        if i % 2:
            store.services.set_key("svc", "primary", f"primary-key-{i}")
        else:
            store.services.update_spec("svc", {f"x{i}": i})

    run_concurrently(job, THREADS)
    final = store.services.get("svc")
    assert final.generation == 1 + THREADS // 2
    assert final.primary_key in {f"primary-key-{i}" for i in range(1, THREADS, 2)}
    assert {f"x{i}" for i in range(0, THREADS, 2)} <= set(final.spec)


@pytest.mark.parametrize("attempt", range(5))
def test_deleting_a_model_racing_a_deploy_of_it_leaves_no_dangling_service(
    store: Store, attempt: int
) -> None:
    model_id = _model(store)
    name, version = model_id.split(":")
    jobs = iter(["delete", "deploy"])

    def job() -> str:
        if next(jobs) == "delete":
            store.models.delete(name, int(version))
            return "deleted"
        store.services.create("svc", _spec(model_id), (None, None), overwrite=False)
        return "deployed"

    outcomes = run_concurrently(_outcome(job), 2)
    services = [s.name for s in store.services.list()]
    models = [m.id for m in store.models.list()]
    if "deleted" in outcomes:  # the deploy came second and found no model
        assert services == [] and models == []
        assert any(isinstance(o, NotFoundError) for o in outcomes), outcomes
    else:  # the delete came second and found the service
        assert services == ["svc"] and models == [model_id]
        assert any(isinstance(o, ConflictError) for o in outcomes), outcomes


def test_the_same_snapshot_sent_together_is_one_snapshot(store: Store) -> None:
    snapshots = SnapshotStore(store.db, store.models.blobs)
    digest, size = store.models.blobs.put_stream(io.BytesIO(b"def run(x): return x\n"))
    files = [ModelFile(path="score.py", sha256=digest, size=size)]
    ids = run_concurrently(lambda: snapshots.put("src", files), THREADS)
    assert len(set(ids)) == 1
    assert snapshots.get(ids[0]) == ("src", files)
