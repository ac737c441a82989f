"""A replica's own counters, answered on its health socket at GET /stats."""

from __future__ import annotations

import json
import socket

import pytest

from modelport.runtime import collection
from modelport.runtime.counters import BUCKETS, ReplicaCounters
from modelport.runtime.health import serve_health


def ask(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_stats_on_the_health_socket_and_probes_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = ReplicaCounters(init_seconds=1.25)
    counters.observe_run(0.003)
    counters.observe_run(0.003)
    counters.observe_run(120.0)  # past the last bound
    sink = collection.Sink(10, write=lambda rows: None)
    try:
        sink.written, sink.dropped = 7, 2
        monkeypatch.setattr(collection, "_shared", sink)
        sock = socket.create_server(("127.0.0.1", 0))
        serve_health(sock, counters.body)  # a daemon thread: it ends with the process
        port = sock.getsockname()[1]
        head, _, body = ask(port, "/stats").partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"application/json" in head
        stats = json.loads(body)
        assert stats["initSeconds"] == 1.25 and stats["runBounds"] == list(BUCKETS)
        assert sum(stats["runCounts"]) == 3 and stats["runCounts"][-1] == 1
        assert stats["runCounts"][BUCKETS.index(0.005)] == 2
        assert stats["collectedRows"] == {"written": 7, "dropped": 2, "failed": 0}
        assert ask(port, "/").endswith(b"Healthy")
    finally:
        sink.close()


def test_no_sink_is_made_to_count_rows() -> None:
    assert ReplicaCounters().as_json()["collectedRows"] == {"written": 0, "dropped": 0, "failed": 0}
    assert collection.current_sink() is None
