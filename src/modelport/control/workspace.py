"""The server's view of a workspace: database, artifact store, registries, token."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from modelport.home import config_path
from modelport.store.blobs import BlobStore
from modelport.store.database import Database
from modelport.store.environments import EnvironmentRegistry
from modelport.store.events import ScalingEvents
from modelport.store.models import ModelRegistry
from modelport.store.services import ServiceStore
from modelport.store.snapshots import SnapshotStore


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
    admin_token: str

    @classmethod
    def open(cls, home: Path, database_url: str | None, admin_token: str) -> ServerWorkspace:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = Database.for_workspace(home, database_url)
        db.create_schema()
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
            admin_token,
        )

    def close(self) -> None:
        self.db.dispose()


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
