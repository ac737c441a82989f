"""The control plane's request log file of a cluster's routers: appended whole,
rotated by size like a router worker's."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.control import requestfile
from modelport.errors import InvalidInputError


def test_batches_append_and_the_file_rotates_by_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requestfile, "MAX_BYTES", 100)
    path = tmp_path / "logs" / "requests-myaks.jsonl"
    line = b'{"service":"iris","status":200,"pad":"' + b"x" * 40 + b'"}\n'
    for _ in range(7):
        requestfile.append(path, line)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == [
        "requests-myaks.jsonl",
        "requests-myaks.jsonl.1",
        "requests-myaks.jsonl.2",
        "requests-myaks.jsonl.3",
    ]
    kept = sum(len(p.read_bytes().splitlines()) for p in path.parent.iterdir())
    assert kept == 7  # two lines per rotated file, one in the live one: none dropped yet
    requestfile.append(path, line * 3)  # one batch: appended whole, then rotated
    assert (
        not path.exists() and len(path.with_name(f"{path.name}.1").read_bytes().splitlines()) == 4
    )
    kept = sum(len(p.read_bytes().splitlines()) for p in path.parent.iterdir())
    assert kept == 8  # the oldest backup (two lines) went


def test_a_line_that_is_no_request_is_refused() -> None:
    assert requestfile.checked_lines(b'{"service":"a"}\r\n{"service":"b"}') == (
        '{"service":"a"}\n{"service":"b"}\n'
    )
    with pytest.raises(InvalidInputError, match="line 2 is no request of a service"):
        requestfile.checked_lines(b'{"service":"a"}\n{"x":1}\n')
