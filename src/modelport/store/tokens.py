"""Token signing keys, the workspace's issuer name, and scoring clients.

Signing keys' private halves are sealed at rest (``store/secrets.py``); a scoring
client's secret is kept only as its SHA-256 (a random 256-bit secret needs no slow
hash), so the database cannot give it back.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from modelport.errors import ConflictError, NotFoundError
from modelport.spec.names import CLIENT_SECRET_PREFIX
from modelport.store.database import Database, upsert
from modelport.store.signing import SigningKey, new_signing_key, retire, spent
from modelport.store.tables import (
    ScoringClientRow,
    SigningKeyRow,
    WorkspaceSettingRow,
    as_utc,
)

ISSUER_SETTING = "token.issuer"


@dataclass(frozen=True)
class ScoringClient:
    name: str
    services: tuple[str, ...]
    created_time: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "services": list(self.services),
            "createdTime": self.created_time.isoformat(),
        }


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: SigningKeyRow) -> SigningKey:
    return SigningKey(
        row.kid,
        row.private_key,
        dict(row.public_jwk),
        as_utc(row.created_time),
        as_utc(row.retired_time) if row.retired_time else None,
        as_utc(row.verify_until) if row.verify_until else None,
    )


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def issuer(self) -> str:
        """The workspace's stable issuer name, made on first use."""
        with self.db.transaction() as session:
            candidate = f"modelport:{uuid.uuid4()}"
            session.execute(
                upsert(session, WorkspaceSettingRow)
                .values(name=ISSUER_SETTING, value=candidate)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = session.get(WorkspaceSettingRow, ISSUER_SETTING)
            assert row is not None
            return row.value

    def keys(self) -> builtins.list[SigningKey]:
        """Every key, the signing one first; one is made when none signs."""
        with self.db.transaction() as session:
            rows = list(session.scalars(select(SigningKeyRow).with_for_update()))
            if not any(r.retired_time is None for r in rows):
                rows.append(self._add(session, new_signing_key()))
            return sorted(
                (_key(r) for r in rows), key=lambda k: (not k.signing, -k.created_time.timestamp())
            )

    def rotate(self, ttl_s: int, now: datetime | None = None) -> builtins.list[SigningKey]:
        """A new key signs from now on; the old one verifies until its tokens expire."""
        now = now or datetime.now(UTC)
        with self.db.transaction() as session:
            for row in session.scalars(
                select(SigningKeyRow).where(SigningKeyRow.retired_time.is_(None)).with_for_update()
            ):
                retired = retire(_key(row), now, ttl_s)
                row.retired_time, row.verify_until = retired.retired_time, retired.verify_until
            self._add(session, new_signing_key(now))
        return self.keys()

    def prune(self, now: datetime | None = None) -> builtins.list[str]:
        """Delete retired keys whose every token has expired; their kids."""
        now = now or datetime.now(UTC)
        with self.db.transaction() as session:
            gone = [
                r.kid
                for r in session.scalars(select(SigningKeyRow).with_for_update())
                if spent(_key(r), now)
            ]
            if gone:
                session.execute(delete(SigningKeyRow).where(SigningKeyRow.kid.in_(gone)))
            return gone

    @staticmethod
    def _add(session: object, key: SigningKey) -> SigningKeyRow:
        row = SigningKeyRow(
            kid=key.kid,
            private_key=key.private_pem,
            public_jwk=key.public_jwk,
            created_time=key.created_time,
        )
        session.add(row)  # type: ignore[attr-defined]
        return row

    # -- scoring clients ---------------------------------------------------------------
    def create_client(self, name: str, services: builtins.list[str]) -> tuple[ScoringClient, str]:
        """A new client and its secret (shown once: only its digest is kept)."""
        secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
        row = ScoringClientRow(
            name=name, secret_digest=secret_digest(secret), services=sorted(set(services))
        )
        try:
            with self.db.transaction() as session:
                if session.get(ScoringClientRow, name) is not None:
                    raise ConflictError(f"a scoring client named {name!r} already exists")
                session.add(row)
                session.flush()
                return _client(row), secret
        except IntegrityError as exc:  # a concurrent create of the same name
            raise ConflictError(f"a scoring client named {name!r} already exists") from exc

    def clients(self) -> builtins.list[ScoringClient]:
        with self.db.transaction() as session:
            rows = session.scalars(select(ScoringClientRow).order_by(ScoringClientRow.name))
            return [_client(r) for r in rows]

    def delete_client(self, name: str) -> None:
        with self.db.transaction() as session:
            row = session.get(ScoringClientRow, name)
            if row is None:
                raise NotFoundError(f"scoring client {name!r} not found")
            session.delete(row)

    def client_for(self, secret: str) -> ScoringClient | None:
        """The client whose secret this is, if any."""
        if not secret.startswith(CLIENT_SECRET_PREFIX):
            return None
        with self.db.transaction() as session:
            row = session.scalar(
                select(ScoringClientRow).where(
                    ScoringClientRow.secret_digest == secret_digest(secret)
                )
            )
            return None if row is None else _client(row)


def _client(row: ScoringClientRow) -> ScoringClient:
    return ScoringClient(row.name, tuple(row.services), as_utc(row.created_time))
