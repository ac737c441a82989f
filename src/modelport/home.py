"""Where a workspace lives on disk, and the client config the server writes there.

``$MODELPORT_HOME`` (default ``~/.modelport``) holds ``workspace.db``, the artifact
store, logs, and ``config.json`` (server URL + admin token, mode 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any, Literal

from modelport.errors import InvalidInputError, ServerUnavailableError

CONFIG_NAME = "config.json"


def home_dir() -> Path:
    raw = os.environ.get("MODELPORT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".modelport"


def config_path(home: Path | None = None) -> Path:
    return (home or home_dir()) / CONFIG_NAME


def workspace_key(home: Path) -> str:
    """A short name for a workspace, the same for every process that opens it."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def runtime_dir(home: Path) -> Path:
    """A short folder for the workspace's sockets (AF_UNIX paths hold ~107 bytes)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/modelport-{os.getuid()}"
    return Path(base) / workspace_key(home)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and a missing parent) for this user alone, or refuse one that
    someone else owns or may write to: in /tmp another user could have made it first."""
    for folder in (path.parent, path):
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise ServerUnavailableError(
                f"{folder} belongs to another user or is writable by others",
                hint="remove it, or set XDG_RUNTIME_DIR to a private folder",
            )
    return path


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ServerUnavailableError(
            f"no workspace config at {path}",
            hint="start the server with `modelport up` (or `modelport up --detach`)",
        ) from exc
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the workspace config {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise InvalidInputError(f"the workspace config {path} has no server url")
    return data


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write a file only its owner can read, atomically (it holds the admin token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def open_private(path: Path, mode: Literal["a", "ab", "w", "wb"]) -> IO[Any]:
    """Open a log or state file readable by its owner alone (a log may quote what a
    user's script printed, or a request it refused), also one made before with a wider mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode[0] == "a" else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, mode)


def rotate(path: Path, backups: int) -> None:
    """``name`` becomes ``name.1``, ``.1`` becomes ``.2``... up to ``backups``; the
    oldest is dropped (no backups: the file goes)."""
    for n in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    if backups > 0:
        os.replace(path, path.with_name(f"{path.name}.1"))
    else:
        path.unlink(missing_ok=True)
