"""``Workspace``: where the SDK finds the management API and its admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from modelport.errors import InvalidInputError
from modelport.home import config_path, home_dir, read_config
from modelport.sdk.authentication import ServicePrincipalAuthentication
from modelport.sdk.client import ApiClient
from modelport.sdk.tls import client_context


class Workspace:
    """A connection to one modelport server.

    ``Workspace.from_config()`` reads ``$MODELPORT_HOME/config.json`` (written by
    ``modelport up``); ``Workspace(url, token)`` names the server directly.  With
    ``auth=ServicePrincipalAuthentication(...)`` (v1's) it acts as that scoring client
    instead of with the admin token: it can get tokens for the client's services and
    score them, nothing else.  ``ca_bundle``: the CAs trusted for https, the management
    API's and the scoring URIs' (default ``$MODELPORT_CA_BUNDLE``, then the config's
    ``caBundle``, then the system's); certificates are always verified.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        auth: ServicePrincipalAuthentication | None = None,
        ca_bundle: str | Path | None = None,
        _configured_ca: str | None = None,
    ) -> None:
        if auth is not None and not isinstance(auth, ServicePrincipalAuthentication):
            raise InvalidInputError(
                f"auth={type(auth).__name__}: modelport takes ServicePrincipalAuthentication "
                "(a scoring client) or no auth (the admin token)"
            )
        credential = auth.bearer() if auth is not None else (token or "")
        self.url = url.rstrip("/")
        self.auth = auth
        self.verify = client_context(ca_bundle, _configured_ca)
        self.client = ApiClient(self.url, credential, verify=self.verify)

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        auth: ServicePrincipalAuthentication | None = None,
        ca_bundle: str | Path | None = None,
    ) -> Self:
        """The server ``config.json`` names; with ``auth``, its admin token is not used (a
        scoring application's config.json may hold the url alone)."""
        target = Path(path) if path is not None else config_path(home_dir())
        if target.is_dir():
            target = config_path(target)
        config = read_config(target)
        configured = config.get("caBundle")
        return cls(
            config["url"],
            None if auth is not None else str(config.get("token", "")),
            auth,
            ca_bundle,
            configured if isinstance(configured, str) else None,
        )

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
