"""Content-addressed artifact store: each distinct content is kept once, by sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from modelport.errors import InvalidInputError

CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def touch(self, digest: str) -> None:
        """Mark a blob as freshly wanted, so garbage collection leaves it alone."""
        os.utime(self.path(digest))

    def writer(self, expected: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def put_stream(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        with self.writer(expected) as writer:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit()

    def collect_garbage(self, referenced: Iterable[str], min_age_s: float) -> int:
        """Remove blobs no model refers to and nobody touched for ``min_age_s``."""
        keep = set(referenced)
        cutoff = time.time() - min_age_s
        removed = 0
        for blob in (self.root / "sha256").glob("*/*"):
            if blob.name not in keep and blob.stat().st_mtime < cutoff:
                blob.unlink(missing_ok=True)
                removed += 1
        for stale in self._tmp.iterdir():
            if stale.stat().st_mtime < cutoff:
                stale.unlink(missing_ok=True)
        return removed


class BlobWriter:
    """Streams bytes to a temporary file while hashing; ``commit`` moves it in place."""

    def __init__(self, store: BlobStore, expected: str | None) -> None:
        self._store = store
        self._expected = expected
        self._hash = hashlib.sha256()
        self._size = 0
        fd, name = tempfile.mkstemp(dir=store._tmp, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._tmp_path = Path(name)
        self._done = False

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        self._file.write(chunk)

    def commit(self) -> tuple[str, int]:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._hash.hexdigest()
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise InvalidInputError(
                f"uploaded content has sha256 {digest}, not the {self._expected} it was sent as"
            )
        target = self._store.path(digest)
        if target.exists():
            self._tmp_path.unlink(missing_ok=True)
            os.utime(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp_path, target)  # atomic: readers never see half a blob
        self._done = True
        return digest, self._size

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp_path.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()
