"""Store and registries against each backend (the ``database_url`` fixture)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.spec.environment import EnvironmentSpec, pip_environment_document
from modelport.spec.model import ModelFile, ModelRegistration
from modelport.store.blobs import BlobStore
from modelport.store.database import Database
from modelport.store.environments import EnvironmentRegistry
from modelport.store.models import ModelRegistry
from modelport.store.tables import ModelFileRow, ModelVersionRow
from tests.conftest import run_concurrently


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> Iterator[ModelRegistry]:
    db = Database(database_url)
    db.upgrade_schema()
    yield ModelRegistry(db, BlobStore(tmp_path / "artifacts"))
    db.dispose()


def _registration(
    reg: ModelRegistry, name: str, files: dict[str, bytes], **extra
) -> ModelRegistration:  # type: ignore[no-untyped-def]
    manifest = []
    for path, content in files.items():
        digest, size = reg.blobs.put_stream(io.BytesIO(content))
        manifest.append(ModelFile(path=path, sha256=digest, size=size))
    basename = next(iter(files)).split("/")[0]
    kind = "folder" if "/" in next(iter(files)) else "file"
    return ModelRegistration(name=name, kind=kind, basename=basename, files=manifest, **extra)


def test_versions_count_up_per_name(registry: ModelRegistry) -> None:
    reg = _registration(registry, "m", {"model.pkl": b"abc"})
    assert [registry.register(reg).version for _ in range(3)] == [1, 2, 3]
    other = _registration(registry, "other", {"model.pkl": b"abc"})
    assert registry.register(other).version == 1
    assert registry.get("m").version == 3
    assert registry.get("m", 2).id == "m:2"
    assert [r.id for r in registry.list(latest=True)] == ["m:3", "other:1"]


def test_concurrent_registrations_get_distinct_versions(registry: ModelRegistry) -> None:
    reg = _registration(registry, "race", {"f/a.bin": b"x" * 100})
    versions = run_concurrently(lambda: registry.register(reg).version, 20)
    assert sorted(versions) == list(range(1, 21))


def test_identical_files_are_stored_once(registry: ModelRegistry) -> None:
    files = {"f/a.bin": b"same", "f/b.bin": b"same", "f/c.bin": b"other"}
    registry.register(_registration(registry, "m", files))
    registry.register(_registration(registry, "m", files))
    blobs = list((registry.blobs.root / "sha256").glob("*/*"))
    assert len(blobs) == 2


def test_interrupted_registration_leaves_no_version(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _registration(registry, "m", {"f/a": b"1", "f/b": b"2", "f/c": b"3"})
    registry.register(reg)
    calls = {"n": 0}
    real_init = ModelFileRow.__init__

    def failing_init(self: ModelFileRow, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # halfway through the files of version 2
            raise KeyboardInterrupt
        real_init(self, **kwargs)

    monkeypatch.setattr(ModelFileRow, "__init__", failing_init)
    with pytest.raises(KeyboardInterrupt):
        registry.register(reg)
    monkeypatch.undo()
    assert [r.version for r in registry.list("m")] == [1]
    with registry.db.transaction() as session:
        assert session.query(ModelVersionRow).count() == 1
        assert session.query(ModelFileRow).count() == 3
    assert registry.register(reg).version == 2


def test_missing_or_mismatched_content_is_refused(registry: ModelRegistry) -> None:
    bogus = ModelFile(path="m.bin", sha256="0" * 64, size=1)
    reg = ModelRegistration(name="m", kind="file", basename="m.bin", files=[bogus])
    with pytest.raises(InvalidInputError, match="was not uploaded"):
        registry.register(reg)
    good = _registration(registry, "m", {"m.bin": b"abc"})
    wrong_size = good.model_copy(update={"files": [good.files[0].model_copy(update={"size": 9})]})
    with pytest.raises(InvalidInputError, match="wrong size"):
        registry.register(wrong_size)
    assert registry.list() == []


@pytest.mark.parametrize(
    ("kind", "basename", "path"),
    [
        ("folder", "f", "f/../../etc/passwd"),
        ("folder", "f", "/abs"),
        ("folder", "f", "g/x"),
        ("file", "m.bin", "m.bin/x"),
    ],
)
def test_paths_outside_the_model_are_refused(
    registry: ModelRegistry, kind: str, basename: str, path: str
) -> None:
    digest, size = registry.blobs.put_stream(io.BytesIO(b"x"))
    reg = ModelRegistration(
        name="m",
        kind=kind,
        basename=basename,
        files=[ModelFile(path=path, sha256=digest, size=size)],
    )
    with pytest.raises(InvalidInputError):
        registry.register(reg)


def test_tags_properties_and_filters(registry: ModelRegistry) -> None:
    reg = _registration(
        registry,
        "m",
        {"m.bin": b"1"},
        tags={"stage": "dev", "team": "a"},
        properties={"auc": "0.9"},
        model_framework="ScikitLearn",
        model_framework_version="1.5",
    )
    registry.register(reg)
    registry.register(reg.model_copy(update={"tags": {"stage": "prod"}}))
    assert [r.version for r in registry.list(tags={"stage": "prod"})] == [2]
    assert [r.version for r in registry.list(tags={"team": None})] == [1]
    assert [r.version for r in registry.list(properties={"auc": "0.9"})] == [2, 1]
    updated = registry.update(
        "m",
        1,
        add_tags={"x": "y"},
        remove_tags=["team"],
        add_properties={"new": "1"},
        description="d",
    )
    assert updated.tags == {"stage": "dev", "x": "y"} and updated.description == "d"
    assert updated.properties == {"auc": "0.9", "new": "1"}
    with pytest.raises(ConflictError, match="properties cannot be changed once set"):
        registry.update("m", 1, add_properties={"auc": "0.5"})
    assert registry.get("m", 1).properties["auc"] == "0.9"


def test_framework_version_needs_framework(registry: ModelRegistry) -> None:
    reg = _registration(registry, "m", {"m.bin": b"1"}, model_framework_version="1.0")
    with pytest.raises(InvalidInputError, match="without a valid framework"):
        registry.register(reg)


def test_unknown_model_or_version(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match="model 'ghost' not found"):
        registry.get("ghost")
    registry.register(_registration(registry, "m", {"m.bin": b"1"}))
    with pytest.raises(NotFoundError, match="model m:7 not found"):
        registry.get("m", 7)


def test_delete_removes_the_version_and_unshared_content(registry: ModelRegistry) -> None:
    registry.register(_registration(registry, "m", {"f/shared": b"s", "f/only1": b"1"}))
    registry.register(_registration(registry, "m", {"f/shared": b"s", "f/only2": b"2"}))
    registry.delete("m", 1)
    assert [r.version for r in registry.list("m")] == [2]
    assert registry.collect_garbage(min_age_s=0) == 1  # only1's content; shared stays
    for f in registry.get("m", 2).files:
        assert registry.blobs.exists(f.sha256)
    assert registry.register(_registration(registry, "m", {"m.bin": b"z"})).version == 3


def test_environment_versions_and_unchanged_definition(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade_schema()
    envs = EnvironmentRegistry(db)
    spec = EnvironmentSpec.from_document(pip_environment_document("sk", "scikit-learn==1.5.2\n"))
    first, created = envs.register(spec)
    assert (first.version, created) == (1, True)
    again, created = envs.register(spec)
    assert (again.version, created) == (1, False)
    changed = spec.model_copy(update={"environment_variables": {"OMP_NUM_THREADS": "1"}})
    second, created = envs.register(changed)
    assert (second.version, created) == (2, True)
    assert second.content_hash != first.content_hash
    assert envs.get("sk").version == 2 and envs.get("sk", 1).spec.environment_variables == {}
    assert [r.version for r in envs.list("sk")] == [2, 1]
    assert [r.version for r in envs.list(latest=True)] == [2]
    with pytest.raises(NotFoundError):
        envs.get("sk", 9)
    db.dispose()
