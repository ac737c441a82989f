"""Content-addressed artifact store: each distinct content is kept once, by sha256.

Folders are made on demand, so a store whose folder was removed works again on the
next write; a write that fails (no space, read-only, not a folder) is a storage
error naming the file, and leaves no partial blob behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from modelport.errors import InvalidInputError
from modelport.store.faults import os_fault

CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_fault(exc, "create the artifact store", self._tmp) from exc

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        path = self.path(digest)
        try:
            return path.stat().st_size
        except OSError as exc:
            raise os_fault(exc, "read", path) from exc

    def touch(self, digest: str) -> bool:
        """Mark a blob as freshly wanted, so garbage collection leaves it alone.

        False when the blob is gone (removed meanwhile, or its folder was).
        """
        path = self.path(digest)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise os_fault(exc, "update", path) from exc
        return True

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
            if blob.name not in keep and _older_than(blob, cutoff):
                blob.unlink(missing_ok=True)
                removed += 1
        for stale in self._tmp.glob("*"):  # glob: the folder itself may be gone
            if _older_than(stale, cutoff):
                stale.unlink(missing_ok=True)
        return removed

    def _temporary(self) -> tuple[int, str]:
        try:
            return tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        except FileNotFoundError:
            pass  # the store's folder was removed: make it again, once
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        except OSError as exc:
            raise os_fault(exc, "create an upload file in", self._tmp) from exc


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


class BlobWriter:
    """Streams bytes to a temporary file while hashing; ``commit`` moves it in place."""

    def __init__(self, store: BlobStore, expected: str | None) -> None:
        self._store = store
        self._expected = expected
        self._hash = hashlib.sha256()
        self._size = 0
        fd, name = store._temporary()
        self._file = os.fdopen(fd, "wb")
        self._tmp_path = Path(name)
        self._done = False

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise os_fault(exc, "write the upload to", self._tmp_path) from exc

    def commit(self) -> tuple[str, int]:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self.abort()
            raise os_fault(exc, "write the upload to", self._tmp_path) from exc
        digest = self._hash.hexdigest()
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise InvalidInputError(
                f"uploaded content has sha256 {digest}, not the {self._expected} it was sent as"
            )
        target = self._store.path(digest)
        try:
            self._move_into_place(target)
        except OSError as exc:
            self.abort()
            raise os_fault(exc, "store the upload as", target) from exc
        self._done = True
        return digest, self._size

    def _move_into_place(self, target: Path) -> None:
        if target.exists():
            self._tmp_path.unlink(missing_ok=True)
            os.utime(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp_path, target)  # atomic: readers never see half a blob

    def abort(self) -> None:
        """Drop the partial upload; never raises (it runs while handling an error)."""
        self._done = True
        # Closing may fail to write the buffered rest (the file is closed anyway); a
        # read-only store cannot unlink (and had nothing added).
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp_path.unlink(missing_ok=True)

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
