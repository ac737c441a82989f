"""The server's view of a workspace: database, artifact store, registries, token."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from modelport.home import config_path
from modelport.store.blobs import BlobStore
from modelport.store.computes import ComputeTargetStore
from modelport.store.database import Database
from modelport.store.endpoints import EndpointStore
from modelport.store.environments import EnvironmentRegistry
from modelport.store.events import ScalingEvents
from modelport.store.faults import os_fault
from modelport.store.models import ModelRegistry
from modelport.store.services import ServiceStore
from modelport.store.snapshots import SnapshotStore
from modelport.store.tokens import TokenStore


@dataclass
class ServerWorkspace:
    home: Path
    db: Database
    blobs: BlobStore
    models: ModelRegistry
    environments: EnvironmentRegistry
    snapshots: SnapshotStore
    services: ServiceStore
    events: ScalingEvents
    computes: ComputeTargetStore
    endpoints: EndpointStore
    admin_token: str
    tokens: TokenStore

    @classmethod
    def open(cls, home: Path, database_url: str | None, admin_token: str) -> ServerWorkspace:
        make_private_folder(home)
        db = Database.for_workspace(home, database_url)
        db.upgrade_schema()
        blobs = BlobStore(home / "artifacts")
        return cls(
            home,
            db,
            blobs,
            ModelRegistry(db, blobs),
            EnvironmentRegistry(db),
            SnapshotStore(db, blobs),
            ServiceStore(db),
            ScalingEvents(db),
            ComputeTargetStore(db),
            EndpointStore(db),
            admin_token,
            TokenStore(db),
        )

    def close(self) -> None:
        self.db.dispose()


def make_private_folder(home: Path) -> None:
    """The workspace folder, readable by its owner only: its database holds service keys.

    ``mkdir``'s mode does not apply to a folder that exists (``modelport up
    --detach`` makes ``logs/`` in it first), so the mode is set here as well.
    """
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if home.stat().st_mode & 0o077:
            home.chmod(0o700)
    except OSError as exc:
        raise os_fault(exc, "create the workspace folder", home) from exc


def workspace_of(request: Request) -> ServerWorkspace:
    ws: ServerWorkspace = request.app.state.workspace
    return ws


def load_or_create_token(home: Path) -> str:
    """The admin token from an earlier start, or a new one."""
    path = config_path(home)
    try:
        token = json.loads(path.read_text()).get("token")
        if isinstance(token, str) and len(token) >= 32:
            return token
    except (OSError, ValueError):
        pass
    return secrets.token_urlsafe(32)
