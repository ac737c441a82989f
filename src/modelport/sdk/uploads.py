"""Sending files: each content once (the server is asked first), streamed."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import pathspec

from modelport.errors import InvalidInputError
from modelport.sdk.client import check_inside, file_sha256
from modelport.sdk.workspace import Workspace
from modelport.spec.model import ModelFile

IGNORE_FILES = (".amlignore", ".gitignore")


def upload_file(workspace: Workspace, path: Path, rel: str) -> ModelFile:
    digest = file_sha256(path)
    blob = f"/api/v1/blobs/{digest}"
    if not workspace.client.exists(blob):
        with path.open("rb") as f:
            workspace.client.call(
                "PUT",
                blob,
                content=_chunks(f),
                headers={"content-type": "application/octet-stream"},
            )
    return ModelFile(path=rel, sha256=digest, size=path.stat().st_size)


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(1 << 20):
        yield chunk


def source_files(source_dir: Path) -> list[tuple[str, Path]]:
    """Files of a source directory, minus what ``.amlignore`` (else ``.gitignore``) excludes."""
    if not source_dir.is_dir():
        raise InvalidInputError(f"source_directory {str(source_dir)!r} is not a folder")
    ignore_file = next((source_dir / n for n in IGNORE_FILES if (source_dir / n).is_file()), None)
    spec = pathspec.GitIgnoreSpec.from_lines(
        ignore_file.read_text().splitlines() if ignore_file else []
    )
    out = []
    real_root = source_dir.resolve()
    seen: set[Path] = set()
    # Links are followed while they stay inside the folder; one leading out is refused
    # rather than uploading (or silently dropping) a file from elsewhere on the machine.
    for current, dirs, files in os.walk(source_dir, followlinks=True):
        real = Path(current).resolve()
        check_inside(Path(current), real, real_root, "source_directory")
        if real in seen:  # a link cycle
            dirs.clear()
            continue
        seen.add(real)
        rel_dir = Path(current).relative_to(source_dir)
        dirs[:] = sorted(
            d
            for d in dirs
            if d != "__pycache__" and not spec.match_file(f"{(rel_dir / d).as_posix()}/")
        )
        for name in sorted(files):
            rel = (rel_dir / name).as_posix()
            if not spec.match_file(rel) and not name.endswith(".pyc"):
                path = Path(current) / name
                check_inside(path, path.resolve(), real_root, "source_directory")
                out.append((rel, path))
    return out


def upload_snapshot(workspace: Workspace, basename: str, files: Iterable[tuple[str, Path]]) -> str:
    manifest = [upload_file(workspace, path, rel).model_dump() for rel, path in files]
    data = workspace.client.call(
        "POST", "/api/v1/snapshots", json={"basename": basename, "files": manifest}
    )
    return str(data["id"])
