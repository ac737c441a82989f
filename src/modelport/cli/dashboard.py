"""``modelport dashboard``: the browser dashboard's address and its viewer credential."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.base import console
from modelport.home import home_dir, open_private


@click.group("dashboard")
def dashboard_group() -> None:
    """The web dashboard (`modelport up` serves it at <management URL>/dashboard/)."""


@dashboard_group.command("viewer-token")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to this file (mode 0600) instead of printing it.",
)
def viewer_token(path: Path | None) -> None:
    """Make a new read-only viewer token (the previous one stops working); shown once.

    A viewer signs in to the dashboard and sees everything but keys; it changes nothing.
    """
    from modelport.control.viewer import credential_path, new_viewer_token

    home = home_dir()
    value = new_viewer_token(home)
    if path is None:
        click.echo(value)
        return
    with open_private(path, "w") as out:
        out.write(value + "\n")
    console.print(f"viewer token written to {path}; the workspace keeps its SHA-256 only")
    console.print(f"({credential_path(home)})")
