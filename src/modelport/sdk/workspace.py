"""``Workspace``: where the SDK finds the management API and its admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from modelport.home import config_path, home_dir, read_config
from modelport.sdk.client import ApiClient


class Workspace:
    """A connection to one modelport server.

    ``Workspace.from_config()`` reads ``$MODELPORT_HOME/config.json`` (written by
    ``modelport up``); ``Workspace(url, token)`` names the server directly.
    """

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.client = ApiClient(self.url, token)

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Self:
        target = Path(path) if path is not None else config_path(home_dir())
        if target.is_dir():
            target = config_path(target)
        config = read_config(target)
        return cls(config["url"], str(config.get("token", "")))

    def get_details(self) -> dict[str, Any]:
        details: dict[str, Any] = self.client.call("GET", "/api/v1/workspace")
        return details

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(url={self.url!r})"
