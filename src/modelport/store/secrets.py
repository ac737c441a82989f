"""Secrets at rest: sealed with a key kept in the workspace folder, apart from the database.

The key file (``secrets.key``, 0600, made on first use) never enters the database, so
a copy of the database alone (a backup, a PostgreSQL dump) reveals no service key,
signing key or cluster credential.  Sealed values carry a prefix, so the migration
that seals a workspace's existing plaintext can tell what it has done already.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from modelport.errors import ModelportError

KEY_FILE = "secrets.key"
PREFIX = "sealed:v1:"
BOX_ATTRIBUTE = "modelport_secret_box"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    @classmethod
    def for_workspace(cls, home: Path) -> SecretBox:
        return cls(_key(home / KEY_FILE))

    @classmethod
    def ephemeral(cls) -> SecretBox:
        return cls(Fernet.generate_key())

    def derive(self, purpose: str) -> str:
        """A secret for ``purpose``, the same each time (for this workspace's key alone)."""
        digest = hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def seal(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode("ascii")

    def open(self, value: str) -> str:
        if not is_sealed(value):
            raise ModelportError(
                "the workspace database holds a secret that is not sealed",
                hint="open the workspace with `modelport up` once: its upgrade seals them",
            )
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode("ascii")).decode()
        except InvalidToken as exc:
            raise ModelportError(
                f"a secret in the workspace database does not open with {KEY_FILE}",
                hint=f"the database belongs with the {KEY_FILE} of the workspace that made it",
            ) from exc


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def _key(path: Path) -> bytes:
    """The workspace's sealing key, made on first use (readable by its owner only)."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key() + b"\n")
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


class Sealed(TypeDecorator[str]):
    """A text column kept sealed: values are sealed on the way in and opened on the way out.

    The box is the engine's (``Database`` puts it on the engine's dialect), so every
    read and write of the column, the ORM's and the migrations' alike, goes through it.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else box_of(dialect).seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else box_of(dialect).open(value)


def box_of(dialect: Dialect) -> SecretBox:
    box: SecretBox | None = getattr(dialect, BOX_ATTRIBUTE, None)
    if box is None:
        raise ModelportError("the workspace database was opened without its secrets key")
    return box


def attach(engine: Engine, box: SecretBox) -> None:
    setattr(engine.dialect, BOX_ATTRIBUTE, box)
