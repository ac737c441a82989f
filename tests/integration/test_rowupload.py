"""Model data sent to the control plane (rowupload.py), against a
real HTTP server on loopback that answers as the test tells it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelport import rowupload as uploader
from modelport.compute.kubernetes import credential
from modelport.rowsink import Rows, Sink
from modelport.rowupload import Destination, Refused, Uploader

SCOPE = credential.Scope("iris", 3, "snap", ("m:1",))


class Ingest(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers: list[int] = []  # statuses to give first, then 204
        self.received: list[tuple[str, str, Any]] = []  # (path, token, body)
        self.renewed = "renewed-token"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1/ingest/iris/3"


class Handler(BaseHTTPRequestHandler):
    server: Ingest

    def do_POST(self) -> None:  # the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        token = self.headers["authorization"].removeprefix("Bearer ")
        self.server.received.append((self.path, token, body))
        status = self.server.answers.pop(0) if self.server.answers else 204
        if self.path.endswith("/credential") and status == 204:
            payload = json.dumps({"token": self.server.renewed, "refresh_at": 2e9}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        error = json.dumps({"error": {"code": "x", "message": f"status {status}"}}).encode()
        self.send_response(status)
        self.send_header("content-length", "0" if status == 204 else str(len(error)))
        self.end_headers()
        if status != 204:
            self.wfile.write(error)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def _token(now: float, ttl_s: float = 600) -> str:
    return credential.mint(
        b"k" * 32, SCOPE, now=now, ttl_s=ttl_s, audience=credential.MODEL_DATA
    ).token


def _batch(rows: list[list[object]]) -> Rows:
    return Rows(Path("m/1/inputs/2026/12/02/data.csv"), ("a", "b"), rows)


def _uploader(ingest: Ingest, token: str, now: float = 1000.0) -> tuple[Uploader, list[float]]:
    paused: list[float] = []
    made = Uploader(Destination(ingest.url, token), clock=lambda: now, pause=paused.append)
    return made, paused


def test_a_batch_is_posted_with_its_partition_and_credential(ingest: Ingest) -> None:
    token = _token(1000.0)
    up, _ = _uploader(ingest, token)
    up.write(_batch([[1, 2.5], [None, Path("/x")]]))
    [(path, sent, body)] = ingest.received
    assert path == "/api/v1/ingest/iris/3/modeldata" and sent == token
    assert body == {
        "partition": "m/1/inputs/2026/12/02",
        "header": ["a", "b"],
        "rows": [[1, 2.5], [None, "/x"]],  # what the CSV writer prints of a value
    }


def test_a_control_plane_away_is_waited_for_with_backoff(ingest: Ingest) -> None:
    ingest.answers = [503, 502, 503]
    up, paused = _uploader(ingest, _token(1000.0))
    up.write(_batch([[1, 2]]))
    assert len(ingest.received) == 4 and paused == [0.5, 1.0, 2.0]


def test_a_refusal_is_not_tried_again(ingest: Ingest) -> None:
    ingest.answers = [400]
    up, paused = _uploader(ingest, _token(1000.0))
    with pytest.raises(Refused, match="HTTP 400: status 400"):
        up.write(_batch([[1, 2]]))
    assert len(ingest.received) == 1 and paused == []


def test_giving_up_raises_an_os_error_the_sink_counts(ingest: Ingest) -> None:
    ingest.answers = [503] * uploader.ATTEMPTS
    up, paused = _uploader(ingest, _token(1000.0))
    sink = Sink(100, flush_s=3600, write=up.write)
    assert sink.put(Path("m/1/inputs/2026/12/02/data.csv"), ["a", "b"], [[1, 2], [3, 4]])
    sink.close()
    assert (sink.written, sink.failed, sink.dropped) == (0, 2, 0)
    assert len(paused) == uploader.ATTEMPTS - 1


def test_a_large_batch_goes_in_parts(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploader, "MAX_BODY", 200)
    up, _ = _uploader(ingest, _token(1000.0))
    rows: list[list[object]] = [[i, "v" * 20] for i in range(20)]
    up.write(_batch(rows))
    assert len(ingest.received) > 2
    sent = [row for _, _, body in ingest.received for row in body["rows"]]
    assert sent == rows


def test_the_credential_is_renewed_after_half_its_life(ingest: Ingest) -> None:
    token = _token(1000.0, ttl_s=600)
    assert uploader.refresh_time(token) == 1300.0
    early, _ = _uploader(ingest, token, now=1299.0)
    early.write(_batch([[1, 2]]))
    assert [p for p, _, _ in ingest.received] == ["/api/v1/ingest/iris/3/modeldata"]
    ingest.received.clear()
    due, _ = _uploader(ingest, token, now=1300.0)
    due.write(_batch([[1, 2]]))
    [(renew, old, _), (data, new, _)] = ingest.received
    assert (renew, old) == ("/api/v1/ingest/iris/3/credential", token)
    assert (data, new) == ("/api/v1/ingest/iris/3/modeldata", "renewed-token")


def test_a_failed_renewal_keeps_the_credential_it_has(ingest: Ingest) -> None:
    token = _token(1000.0, ttl_s=600)
    ingest.answers = [503]
    up, _ = _uploader(ingest, token, now=1400.0)
    up.write(_batch([[1, 2]]))
    [(_, _, _), (data, sent, _)] = ingest.received
    assert data.endswith("/modeldata") and sent == token


def test_the_destination_leaves_the_entry_scripts_environment() -> None:
    environ = {
        "MODELPORT_MODELDATA_URL": "https://cp:8443/api/v1/ingest/iris/3/",
        "MODELPORT_MODELDATA_TOKEN": "secret-token",
        "MODELPORT_MODELDATA_CA": "PEM",
        "OTHER": "x",
    }
    found = Destination.take(environ, uploader.REPLICA)
    assert found == Destination("https://cp:8443/api/v1/ingest/iris/3", "secret-token", "PEM")
    assert environ == {
        "MODELPORT_MODELDATA_URL": "https://cp:8443/api/v1/ingest/iris/3/",
        "OTHER": "x",
    }
    no_credential = {"MODELPORT_MODELDATA_URL": "http://cp"}
    assert Destination.take(no_credential, uploader.REPLICA) is None
