"""Reading the end of replica log files without loading them whole."""

from __future__ import annotations

from pathlib import Path


def tail(path: Path, lines: int, block: int = 65536) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            end = f.tell()
            data = b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - block)
                f.seek(start)
                data = f.read(end - start) + data
                end = start
    except FileNotFoundError:
        return ""
    return b"\n".join(data.splitlines()[-lines:]).decode("utf-8", errors="replace")
