"""``modelport metrics token``: the read-only credential for the metrics port."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.base import console
from modelport.home import home_dir, open_private


@click.group("metrics")
def metrics_group() -> None:
    """Scraping the workspace's metrics (`modelport up --metrics-port N`)."""


@metrics_group.command("token")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to this file (mode 0600), e.g. Prometheus' credentials_file, "
    "instead of printing it.",
)
def token(path: Path | None) -> None:
    """Make a new metrics token (the previous one stops working); it is shown once."""
    from modelport.control.metrics_port import credential_path, new_metrics_token

    home = home_dir()
    value = new_metrics_token(home)
    if path is None:
        click.echo(value)
        return
    with open_private(path, "w") as out:
        out.write(value + "\n")
    console.print(f"metrics token written to {path}; the workspace keeps its SHA-256 only")
    console.print(f"({credential_path(home)})")
