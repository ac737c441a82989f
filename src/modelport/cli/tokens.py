"""``modelport token ...`` (signing keys), ``modelport client ...`` (scoring clients), and
the ``get-access-token`` commands of services and endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, output_option

if TYPE_CHECKING:
    from modelport.sdk.webservice import AksServiceAccessToken
    from modelport.sdk.workspace import Workspace


def _workspace() -> Workspace:
    from modelport.sdk.workspace import Workspace

    return Workspace.from_config()


def emit_token(token: AksServiceAccessToken, output: str) -> None:
    def table(data: dict[str, Any]) -> Table:
        t = Table("field", "value", show_header=False)
        for k, v in data.items():
            t.add_row(k, str(v))
        return t

    emit(token.serialize(), output, table)


# -- signing keys ------------------------------------------------------------------------
@click.group("token")
def token_group() -> None:
    """Scoring tokens' signing keys."""


def _keys_table(data: dict[str, Any]) -> Table:
    t = Table("kid", "signing", "created", "retired", "verifies until")
    for k in data["value"]:
        t.add_row(
            k["kid"],
            "yes" if k["signing"] else "no",
            k["createdTime"][:19],
            (k["retiredTime"] or "")[:19],
            (k["verifyUntil"] or "")[:19],
        )
    return t


@token_group.command("keys")
@output_option
def keys(output: str) -> None:
    """List the signing keys: the one signing, and retired ones still verifying."""
    emit(_workspace().client.call("GET", "/api/v1/tokens/keys"), output, _keys_table)


@token_group.command("rotate-key")
@output_option
def rotate_key(output: str) -> None:
    """A new key signs from now on; the old one verifies until its last token expires."""
    emit(_workspace().client.call("POST", "/api/v1/tokens/rotate-key"), output, _keys_table)


# -- scoring clients ---------------------------------------------------------------------
@click.group("client")
def client_group() -> None:
    """Scoring clients: credentials that can only obtain tokens for their services."""


@client_group.command("create")
@click.argument("name")
@click.option(
    "-s",
    "--service",
    "services",
    multiple=True,
    required=True,
    help="A service or endpoint the client may get tokens for; repeatable.",
)
@output_option
def create(name: str, services: tuple[str, ...], output: str) -> None:
    """Create a client; its secret is printed once and cannot be shown again."""
    data = _workspace().client.call(
        "POST", "/api/v1/clients", json={"name": name, "services": list(services)}
    )
    if output == "json":
        emit(data, output, lambda d: "")
        return
    console.print(
        f"Scoring client {data['name']} may get tokens for {', '.join(data['services'])}. "
        "Its secret (shown once; keep it like a password):",
        highlight=False,
    )
    click.echo(data["secret"])


@client_group.command("list")
@output_option
def list_clients(output: str) -> None:
    """The scoring clients and their services (never their secrets)."""

    def table(data: dict[str, Any]) -> Table:
        t = Table("name", "services", "created")
        for c in data["value"]:
            t.add_row(c["name"], ", ".join(c["services"]), c["createdTime"][:19])
        return t

    emit(_workspace().client.call("GET", "/api/v1/clients"), output, table)


@client_group.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Revoke a client: its secret gets no more tokens (tokens it holds run out)."""
    _workspace().client.call("DELETE", f"/api/v1/clients/{name}")
    console.print(f"Deleted scoring client {name}.", highlight=False)
