"""The router's request log (lines, rotation, drops) and the runtime's tagged prints."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

from modelport.httpserver import Response
from modelport.router.requestlog import Entry, RequestLog
from modelport.runtime.output import RequestTagged
from modelport.runtime.request_context import REQUEST_ID


def _entry(route: str = "svc", headers: list[tuple[bytes, bytes]] | None = None) -> Entry:
    entry = Entry(route, headers or [], 11)
    entry.waited_s, entry.replica = 0.002, ("127.0.0.1", 5001)
    return entry


def test_a_request_is_one_json_line_without_credentials(tmp_path: Path) -> None:
    book = RequestLog(tmp_path / "requests-0.jsonl")
    book.versions = {"ep--blue": ("ep", "blue")}
    asked = [(b"authorization", b"Bearer sekrit"), (b"x-ms-client-request-id", b"c-1")]
    answer = Response(200, b"[1, 2]", [(b"x-request-id", b"r-1")])
    book.add(_entry("svc", asked), answer, 0.0125)
    book.add(_entry("ep--blue"), Response(503, b"{}"), 0.5)
    book.close()
    text = (tmp_path / "requests-0.jsonl").read_text()
    assert "sekrit" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["service"] == "svc" and first["version"] is None
    assert (first["status"], first["latencyMs"], first["queueWaitMs"]) == (200, 12.5, 2.0)
    assert (first["bytesIn"], first["bytesOut"], first["replica"]) == (11, 6, "127.0.0.1:5001")
    assert (first["requestId"], first["clientRequestId"]) == ("r-1", "c-1")
    assert first["time"].endswith("Z")
    assert (second["service"], second["version"], second["status"]) == ("ep", "blue", 503)
    mode = stat.S_IMODE((tmp_path / "requests-0.jsonl").stat().st_mode)
    assert mode == 0o600


def test_the_file_rotates_by_size_keeping_a_few_backups(tmp_path: Path) -> None:
    path = tmp_path / "requests-0.jsonl"
    book = RequestLog(path, max_bytes=300, backups=2)
    for _ in range(8):
        for _ in range(2):
            book.add(_entry(), Response(200, b"x"), 0.001)
        book._flush()  # the writer thread's step, run here for a deterministic order
    book.close()
    names = {p.name for p in tmp_path.iterdir()}
    assert names - {"requests-0.jsonl"} == {"requests-0.jsonl.1", "requests-0.jsonl.2"}
    assert path.with_name("requests-0.jsonl.1").stat().st_size >= 300


def test_a_full_buffer_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    book = RequestLog(tmp_path / "r.jsonl", max_buffered=3)
    for _ in range(5):
        book.add(_entry(), Response(200), 0.001)
    assert book.dropped == 2
    book.close()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def test_the_writer_thread_flushes_without_close(tmp_path: Path) -> None:
    from tests.conftest import wait_for

    path = tmp_path / "r.jsonl"
    book = RequestLog(path)
    book.start()
    try:
        book.add(_entry(), Response(200), 0.001)
        wait_for(lambda: path.exists() and path.read_text(), 5, "the line on disk")
    finally:
        book.close()


def test_prints_inside_a_request_carry_its_id() -> None:
    out = io.StringIO()
    stream = RequestTagged(out)
    print("before", file=stream)  # type: ignore[arg-type]
    token = REQUEST_ID.set("rid-7")
    try:
        print("one\ntwo", file=stream)  # type: ignore[arg-type]
        print("part ", end="", file=stream)  # type: ignore[arg-type]
        print("whole", file=stream)  # type: ignore[arg-type]
    finally:
        REQUEST_ID.reset(token)
    print("after", file=stream)  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == [
        "before",
        "[rid-7] one",
        "[rid-7] two",
        "[rid-7] part whole",
        "after",
    ]
