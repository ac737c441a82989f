"""The staging credential: what lets one pod fetch one service generation's files.

A JWT (HS256) signed with the workspace's staging key, which lives beside the
admin token in the workspace folder (``staging.key``, mode 0600) and never leaves
the control plane.  Its claims name the service, the generation and what that
generation consists of (the source snapshot and the model versions), so the files
it opens stay the same after the service moves on to a newer generation; it
expires (a day by default), and the control plane renews the generation's Secret
after ``refresh_at``.  The admin token is no staging credential, and a staging
credential opens nothing else.

A service that collects model data gets a second credential of the same shape for
another audience (``MODEL_DATA``): it lets the replicas of that generation append
rows to the service's model data, renew it, and nothing else; and the routers of
an attached cluster get a third (``CAPTURE``, naming the compute target) for the
requests they capture.  None is taken for another.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from modelport.errors import UnauthorizedError

AUDIENCE = "modelport-staging"
MODEL_DATA = "modelport-modeldata"  # the model-data credential's audience
CAPTURE = "modelport-capture"  # the cluster routers' capture credential's audience
_WHAT = {AUDIENCE: "staging", MODEL_DATA: "model-data", CAPTURE: "capture"}
ALGORITHM = "HS256"
KEY_FILE = "staging.key"
DEFAULT_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Scope:
    service: str
    generation: int
    snapshot: str  # the source snapshot's id
    models: tuple[str, ...]  # "name:version"


@dataclass(frozen=True)
class Credential:
    token: str
    issued_at: int
    expires_at: int
    refresh_at: int  # renew the generation's Secret after this


@dataclass(frozen=True)
class Grant:
    """A verified credential: what it opens and when it was issued."""

    scope: Scope
    issued_at: int
    expires_at: int


def routers_scope(target: str) -> Scope:
    """What a cluster's routers' capture credential names: their compute target."""
    return Scope(target, 0, "", ())


def signing_key(home: Path) -> bytes:
    """The workspace's staging key, made on first use (readable by its owner only)."""
    path = home / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return bytes.fromhex(path.read_text().strip())
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def mint(
    key: bytes,
    scope: Scope,
    now: float | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    audience: str = AUDIENCE,
) -> Credential:
    issued = int(time.time() if now is None else now)
    expires = issued + int(ttl_s)
    claims = {
        "aud": audience,
        "sub": f"{scope.service}/{scope.generation}",
        "svc": scope.service,
        "gen": scope.generation,
        "snap": scope.snapshot,
        "models": list(scope.models),
        "iat": issued,
        "exp": expires,
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM)
    return Credential(token, issued, expires, issued + int(ttl_s / 2))


def verify(key: bytes, token: str, now: float | None = None, audience: str = AUDIENCE) -> Grant:
    """The grant ``token`` carries; :class:`UnauthorizedError` saying why not."""
    what = _WHAT[audience]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "sub"]},
        )
        grant = _grant(claims)
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
        raise UnauthorizedError(
            f"not a valid {what} credential ({exc})",
            hint="the pod's staging Secret holds the credentials its generation was given",
        ) from exc
    if (time.time() if now is None else now) >= grant.expires_at:
        when = datetime.fromtimestamp(grant.expires_at, UTC).isoformat(timespec="seconds")
        scope = grant.scope
        holder = (
            f"the routers of compute target {scope.service}"
            if audience == CAPTURE
            else f"service {scope.service} generation {scope.generation}"
        )
        raise UnauthorizedError(
            f"the {what} credential of {holder} expired at {when}",
            hint="the control plane renews it in the pod's Secret; restart the pod after",
        )
    return grant


def _grant(claims: dict[str, Any]) -> Grant:
    models = claims["models"]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ValueError("its models claim is not a list of model ids")
    scope = Scope(str(claims["svc"]), int(claims["gen"]), str(claims["snap"]), tuple(models))
    return Grant(scope, int(claims["iat"]), int(claims["exp"]))
