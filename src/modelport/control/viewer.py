"""The read-only viewer credential of the dashboard (``modelport dashboard viewer-token``).

Like the metrics token (``control/metrics_port.py``) it is shown once and the workspace
keeps only its SHA-256 (``viewer.json``, mode 0600), read again at each sign-in so a new
token takes over at once.  A viewer sees what the admin sees except keys, and changes
nothing; the dashboard enforces that on the server (``dashboard/sessions.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from enum import StrEnum
from pathlib import Path

from modelport.home import write_private_json

PREFIX = "mpv_"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


def credential_path(home: Path) -> Path:
    return home / "viewer.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_viewer_token(home: Path) -> str:
    """A new viewer token; the one before stops working.  The caller shows it once."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = PREFIX + secrets.token_urlsafe(32)
    write_private_json(credential_path(home), {"sha256": _digest(token)})
    return token


def viewer_digest(home: Path) -> str | None:
    try:
        value = json.loads(credential_path(home).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def role_of(presented: str, admin_token: str, home: Path) -> Role | None:
    """Whose credential ``presented`` is: both compared in constant time, always."""
    admin = hmac.compare_digest(presented.encode(), admin_token.encode())
    expected = viewer_digest(home)
    viewer = hmac.compare_digest(_digest(presented), expected or "")
    if admin:
        return Role.ADMIN
    if viewer and expected is not None:
        return Role.VIEWER
    return None
