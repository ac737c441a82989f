"""What the router answers from a request's headers alone, before its body is read."""

from __future__ import annotations

import hashlib
import json

from modelport.router.proxy import HEALTHY, STARTING, UNAUTHORIZED, admission
from modelport.router.table import RouteTable, build_table

KEY = b"k" * 32
OTHER = b"o" * 32


def service(key: bytes | None) -> dict[str, object]:
    digests = [hashlib.sha256(key).hexdigest()] if key else []
    return {"auth": key is not None, "keyDigests": digests, "replicas": []}


def table() -> RouteTable:
    doc = {
        "revision": 3,
        "services": {
            "keyed": service(KEY),
            "open": service(None),
            "ep-v1": {**service(KEY), "hidden": True},
            "ep-v2": {**service(OTHER), "hidden": True},
        },
        "endpoints": {
            "ep": {
                "versions": [
                    {"name": "v1", "share": 50, "route": "ep-v1"},
                    {"name": "v2", "share": 50, "route": "ep-v2"},
                ]
            }
        },
    }
    return build_table(doc, RouteTable())


def bearer(key: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x"), (b"authorization", b"Bearer " + key)]


def answer(path: str, headers: list[tuple[bytes, bytes]], method: str = "POST") -> int | None:
    response = admission(table(), method, path, headers)
    return None if response is None else response.status


def test_a_keyed_service_lets_its_key_through_and_refuses_the_rest_as_the_handler_does() -> None:
    path = "/api/v1/service/keyed/score"
    assert answer(path, bearer(KEY)) is None
    assert admission(table(), "POST", path, []) is UNAUTHORIZED  # same body and challenge
    assert admission(table(), "POST", path, bearer(OTHER)) is UNAUTHORIZED
    assert answer(path, bearer(KEY), method="DELETE") == 405
    assert answer("/api/v1/service/open/score", []) is None


def test_unknown_services_and_paths_are_404_and_swagger_stays_open() -> None:
    assert answer("/api/v1/service/nope/score", bearer(KEY)) == 404
    assert answer("/api/v1/service/keyed/other", bearer(KEY)) == 404
    assert answer("/elsewhere", []) == 404
    assert answer("/api/v1/service/keyed/swagger.json", [], method="GET") is None
    assert answer("/api/v1/service/ep-v1/score", bearer(KEY)) == 404  # hidden: via "ep" only


def test_an_endpoint_takes_a_key_of_any_of_its_versions() -> None:
    path = "/api/v1/service/ep/score"
    assert answer(path, bearer(KEY)) is None
    assert answer(path, bearer(OTHER)) is None
    assert admission(table(), "POST", path, bearer(b"w" * 32)) is UNAUTHORIZED


def test_healthz_is_open_and_says_only_that_the_router_lives() -> None:
    response = admission(table(), "GET", "/healthz", [])
    assert response is HEALTHY and json.loads(response.body) == {"status": "ok"}
    assert answer("/healthz", [], method="POST") == 404


def test_before_any_table_scoring_is_503_starting() -> None:
    assert admission(RouteTable(), "POST", "/api/v1/service/keyed/score", []) is STARTING
    assert admission(RouteTable(), "GET", "/healthz", []) is HEALTHY
