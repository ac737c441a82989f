"""Source snapshots: a source directory's files, content-addressed like models."""

from __future__ import annotations

import hashlib
import json

from modelport.errors import InvalidInputError, NotFoundError
from modelport.spec.model import ModelFile, check_relative_path
from modelport.store.blobs import BlobStore
from modelport.store.database import Database, upsert
from modelport.store.tables import SnapshotRow


def snapshot_id(basename: str, files: list[ModelFile]) -> str:
    canonical = json.dumps(
        {"basename": basename, "files": sorted((f.path, f.sha256) for f in files)},
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class SnapshotStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def put(self, basename: str, files: list[ModelFile]) -> str:
        """Record a snapshot whose files are already uploaded; the same content, one id."""
        if len(basename) > 255:  # its column
            raise InvalidInputError("a snapshot's basename must be at most 255 characters long")
        if basename:
            check_relative_path(basename)
        for f in files:
            check_relative_path(f.path)
            if not self.blobs.exists(f.sha256):
                raise InvalidInputError(f"the content of {f.path!r} was not uploaded")
        if len({f.path for f in files}) != len(files):
            raise InvalidInputError("a snapshot lists the same path twice")
        sid = snapshot_id(basename, files)
        with self.db.transaction() as session:
            # Two clients sending the same source at once: one row, no duplicate-key error.
            session.execute(
                upsert(session, SnapshotRow)
                .values(id=sid, basename=basename, files=[f.model_dump() for f in files])
                .on_conflict_do_nothing(index_elements=[SnapshotRow.id])
            )
        return sid

    def get(self, sid: str) -> tuple[str, list[ModelFile]]:
        with self.db.transaction() as session:
            row = session.get(SnapshotRow, sid)
            if row is None:
                raise NotFoundError(f"source snapshot {sid} not found")
            return row.basename, [ModelFile.model_validate(f) for f in row.files]
