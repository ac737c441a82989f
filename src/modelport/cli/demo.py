"""``modelport demo``: start (or reuse) the local server and register a sample model."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from modelport.cli.base import console, kv_text
from modelport.cli.server import DEFAULT_PORT, start_detached
from modelport.home import home_dir

MODEL_NAME = "demo-linear"

# A tiny linear model: y = 2*x0 - 1*x1 + 0.5, kept as plain JSON so the sample needs
# no machine-learning library.
WEIGHTS = {"coefficients": [2.0, -1.0], "intercept": 0.5, "features": ["x0", "x1"]}
MODEL_README = """A linear model used by `modelport demo`: y = 2*x0 - x1 + 0.5.
weights.json holds its coefficients and intercept.
"""


def write_sample_model(folder: Path) -> Path:
    model_dir = folder / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "weights.json").write_text(json.dumps(WEIGHTS, indent=2) + "\n")
    (model_dir / "README.txt").write_text(MODEL_README)
    return model_dir


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    default="modelport-demo",
    show_default=True,
    help="Folder the sample files are written to.",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port for the server if one has to be started (0: any free port).",
)
def demo(folder: str, port: int) -> None:
    """Start the local server (or reuse it) and register a sample model."""
    from modelport.sdk.model import Model
    from modelport.sdk.workspace import Workspace

    home = home_dir()
    url = start_detached(home, "127.0.0.1", port)
    console.print(f"[bold]1.[/bold] modelport server at {url} (workspace {home})")
    model_dir = write_sample_model(Path(folder))
    console.print(f"[bold]2.[/bold] sample model written to {model_dir}/")
    with Workspace.from_config(home) as ws:
        model = Model.register(
            ws,
            model_dir,
            MODEL_NAME,
            tags={"source": "demo"},
            properties={"formula": "2*x0 - x1 + 0.5"},
            description="modelport demo: a linear model",
            model_framework="Custom",
        )
        console.print(f"[bold]3.[/bold] registered [bold]{model.id}[/bold]")
        table = Table("id", "files", "tags", "created", title="versions of " + MODEL_NAME)
        for m in Model.list(ws, name=MODEL_NAME):
            table.add_row(
                m.id, ", ".join(f.path for f in m.files), kv_text(m.tags), m.created_time[:19]
            )
        console.print(table)
    console.print(
        "Next: `modelport model show -n demo-linear`, "
        "`modelport model download -n demo-linear -t /tmp/out`, "
        "`modelport down` to stop the server."
    )
