"""Endpoints in the store against each backend: v1's rules under concurrent changes, the
versions' services, deletion, events."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.errors import ConfigError, ConflictError, NotFoundError
from modelport.spec.endpoint import Version
from modelport.spec.model import ModelFile, ModelRegistration
from modelport.store.blobs import BlobStore
from modelport.store.database import Database
from modelport.store.endpoints import EndpointStore
from modelport.store.models import ModelRegistry
from modelport.store.services import DELETING, ServiceStore
from tests.conftest import run_concurrently


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade_schema()
    models = ModelRegistry(database, BlobStore(tmp_path / "artifacts"))
    digest, size = models.blobs.put_stream(io.BytesIO(b"w"))
    files = [ModelFile(path="w.bin", sha256=digest, size=size)]
    models.register(ModelRegistration(name="m", kind="file", basename="w.bin", files=files))
    yield database
    database.dispose()


SPEC: dict[str, Any] = {"models": ["m:1"], "deploymentConfig": {"computeType": "AKS"}}
LONGEST = "e" * 32  # an endpoint and a version at the longest names v1 allows


def test_an_endpoint_holds_its_versions_and_each_is_a_service(db: Database) -> None:
    endpoints, services = EndpointStore(db), ServiceStore(db)
    made = endpoints.create(
        LONGEST, {"authEnabled": True}, ("k" * 10, None), Version("v" * 32), SPEC
    )
    assert made.primary_key == "k" * 10 and made.versions[0].is_default
    service = services.get(f"{LONGEST}.{'v' * 32}")  # 65 characters
    assert service.spec["endpoint"] == LONGEST and service.generation == 1
    record = endpoints.add_version(LONGEST, "green", SPEC, 20, None, None, 0)
    assert [v.name for v in record.versions] == ["v" * 32, "green"]
    with pytest.raises(ConflictError, match="an endpoint named"):
        services.create(LONGEST, SPEC, (None, None), overwrite=False)
    services.create("plain", SPEC, (None, None), overwrite=False)
    with pytest.raises(ConflictError, match="a service named 'plain' already exists"):
        endpoints.create("plain", {}, (None, None), Version("one"), SPEC)
    with pytest.raises(NotFoundError, match="Endpoint with name nope not found"):
        endpoints.add_version("nope", "x", SPEC, 0, None, None, 0)
    changed = endpoints.update_version(LONGEST, "green", {"models": ["m:1"]}, 30)
    assert changed.versions[1].traffic_percentile == 30
    assert services.get(f"{LONGEST}.green").generation == 2


def test_concurrent_additions_each_count_and_the_seventh_is_refused(db: Database) -> None:
    endpoints = EndpointStore(db)
    endpoints.create("busy", {}, (None, None), Version("v0"), SPEC)
    names = iter(f"v{i}" for i in range(1, 9))
    lock = __import__("threading").Lock()

    def add() -> str:
        with lock:
            name = next(names)
        try:
            endpoints.add_version("busy", name, SPEC, 10, None, None, 0)
        except ConfigError as exc:
            return exc.message
        return "added"

    results = run_concurrently(add, 8)
    assert results.count("added") == 5
    assert all("at most 6 versions" in r for r in results if r != "added")
    record = endpoints.get("busy")
    assert len(record.versions) == 6 and sum(v.traffic_percentile for v in record.versions) == 50


def test_a_deleted_endpoint_goes_once_its_versions_services_have(db: Database) -> None:
    endpoints, services = EndpointStore(db), ServiceStore(db)
    endpoints.create("gone", {}, (None, None), Version("a"), SPEC)
    endpoints.add_version("gone", "b", SPEC, 0, None, None, 0)
    after = endpoints.delete_version("gone", "b")
    assert [v.name for v in after.versions] == ["a"]
    assert services.get("gone.b").state == DELETING
    with pytest.raises(ConflictError, match="'b' of endpoint 'gone' is still being deleted"):
        endpoints.add_version("gone", "b", SPEC, 0, None, None, 0)
    endpoints.record_event("gone", "step", "a step", {"n": 1})
    assert [e["kind"] for e in endpoints.events("gone")] == ["step"]
    marked = endpoints.mark_deleting("gone")
    assert marked.deleting and services.get("gone.a").state == DELETING
    with pytest.raises(ConflictError, match="is being deleted"):
        endpoints.update_version("gone", "a", None, 10)
    assert not endpoints.remove_if_done("gone")
    services.remove("gone.a")
    services.remove("gone.b")
    assert endpoints.remove_if_done("gone")
    assert endpoints.find("gone") is None and endpoints.events("gone") == []
