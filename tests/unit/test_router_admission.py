"""What the router answers from a request's headers alone, before its body is read."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest

from modelport.httpserver import MAX_CONNECTIONS, TRIM_INTERVAL_S, Limits, _Trimmer
from modelport.router import __main__ as router_main
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
    length = [(b"content-length", b"99000000")]
    assert answer("/api/v1/service/keyed/swagger.json", length, method="GET") == 400
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


class FakeLoop:
    def __init__(self) -> None:
        self.calls: list[tuple[float, object]] = []

    def call_later(self, delay: float, callback: object) -> object:
        self.calls.append((delay, callback))
        return object()


def test_memory_is_trimmed_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(_Trimmer, "trim", trims.append)
    monkeypatch.setattr(_Trimmer, "pending", None)
    monkeypatch.setattr(_Trimmer, "last", -10.0)
    loop = FakeLoop()
    _Trimmer.soon(loop)  # type: ignore[arg-type]
    _Trimmer.soon(loop)  # type: ignore[arg-type]  # one is pending already
    assert len(loop.calls) == 1 and loop.calls[0][0] == 0.0  # none for 1 s: at once
    _Trimmer._run()
    assert trims == [0]
    _Trimmer.soon(loop)  # type: ignore[arg-type]
    assert len(loop.calls) == 2 and 0.9 < loop.calls[1][0] <= TRIM_INTERVAL_S


def test_router_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELPORT_ROUTER_LIMITS", raising=False)
    assert router_main._limits() == router_main.ROUTER_LIMITS
    assert router_main.ROUTER_LIMITS.max_connections == MAX_CONNECTIONS
    monkeypatch.setenv("MODELPORT_ROUTER_LIMITS", json.dumps(asdict(Limits(header_timeout_s=1))))
    assert router_main._limits() == Limits(header_timeout_s=1)  # what the control plane sent
