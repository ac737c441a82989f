"""The router's request log (lines, rotation, drops) and the runtime's tagged prints."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from modelport.control.logfiles import (
    LogQuery,
    RequestQuery,
    Tailer,
    follow_requests,
    merged_logs,
    request_lines,
)
from modelport.errors import InvalidInputError
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


def test_a_router_pod_sends_its_lines_instead_of_writing_them(tmp_path: Path) -> None:
    sent: list[bytes] = []
    book = RequestLog(tmp_path / "unused.jsonl", send=sent.append)
    book.add(_entry("svc"), Response(200, b"{}", [(b"x-request-id", b"r-1")]), 0.01)
    book.add(_entry("svc"), Response(500, b"{}", [(b"x-request-id", b"r-2")]), 0.01)
    book.close()
    assert not (tmp_path / "unused.jsonl").exists()
    [batch] = sent
    assert [json.loads(x)["requestId"] for x in batch.decode().splitlines()] == ["r-1", "r-2"]


def test_odd_ids_still_make_valid_json(tmp_path: Path) -> None:
    book = RequestLog(tmp_path / "r.jsonl")
    odd = 'a"b\\c\u00e9'
    book.add(_entry(headers=[(b"x-request-id", odd.encode("latin-1"))]), Response(200), 0.001)
    book.close()
    assert json.loads((tmp_path / "r.jsonl").read_text())["requestId"] == odd


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


def test_a_tailer_reads_on_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "requests-0.jsonl"
    path.write_text("a\nb\npart")
    tailer = Tailer(tmp_path, "requests-*.jsonl")
    try:
        assert tailer.existing() == {path: ["a", "b"]}
        assert tailer.poll() == {}
        with path.open("a") as f:
            f.write("ial\nc\n")
        os.replace(path, tmp_path / "requests-0.jsonl.1")  # as the router rotates
        with path.open("a") as f:
            f.write("d\n")
        assert tailer.poll() == {path: ["partial", "c", "d"]}
    finally:
        tailer.close()


def test_requests_are_filtered_by_service_status_time_and_tail(tmp_path: Path) -> None:
    now = time.time()

    def line(service: str, status: int, age_s: float) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - age_s))
        return json.dumps({"time": f"{stamp}.000Z", "service": service, "status": status})

    (tmp_path / "requests-0.jsonl.1").write_text(line("a", 200, 3600) + "\n")
    (tmp_path / "requests-0.jsonl").write_text(
        "\n".join([line("a", 503, 30), line("b", 500, 20), line("a", 200, 10), "{bad"]) + "\n"
    )
    (tmp_path / "requests-1.jsonl").write_text(line("a", 404, 5) + "\n")

    def statuses(**kw: object) -> list[int]:
        tailer = Tailer(tmp_path, "requests-*.jsonl")
        try:
            found = request_lines(tmp_path, RequestQuery("a", **kw), tailer)  # type: ignore[arg-type]
        finally:
            tailer.close()
        return [doc["status"] for doc in found]

    assert statuses() == [200, 503, 200, 404]
    assert statuses(status="5xx") == [503]
    assert statuses(status="404") == [404]
    assert statuses(since="1m") == [503, 200, 404]
    assert statuses(tail=2) == [200, 404]
    with pytest.raises(InvalidInputError):
        statuses(status="2x")


def test_replica_logs_merge_by_time_after_their_labels(tmp_path: Path) -> None:
    (tmp_path / "replica-1-0.log").write_text(
        "2026-01-01 10:00:00,000 INFO start\nprinted a\n2026-01-01 10:00:05,000 INFO late\n"
    )
    (tmp_path / "replica-1-1.log").write_text("2026-01-01 10:00:02,000 INFO middle\nprinted b\n")
    (tmp_path / "replica-0-0.log").write_text("an older generation\n")
    merged = merged_logs(tmp_path, LogQuery()).splitlines()
    assert merged == [
        "[replica-0] 2026-01-01 10:00:00,000 INFO start",
        "[replica-0] printed a",
        "[replica-1] 2026-01-01 10:00:02,000 INFO middle",
        "[replica-1] printed b",
        "[replica-0] 2026-01-01 10:00:05,000 INFO late",
    ]
    assert merged_logs(tmp_path, LogQuery(replica=1, tail=1)) == "[replica-1] printed b"


def test_a_followed_stream_yields_new_lines_and_ends_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests-0.jsonl"
    path.write_text('{"time":"2026-01-01T00:00:00.000Z","service":"a","status":200}\n')
    left = asyncio.Event()

    async def gone() -> bool:
        return left.is_set()

    async def follow() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async for chunk in follow_requests(tmp_path, RequestQuery("a"), gone):
            seen += [json.loads(line) for line in chunk.splitlines()]
            if len(seen) == 1:
                with path.open("a") as f:
                    f.write('{"time":"2026-01-01T00:00:01.000Z","service":"a","status":503}\n')
            else:
                left.set()
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(), 10))
    assert [doc["status"] for doc in seen] == [200, 503]
