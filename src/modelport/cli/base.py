"""Shared CLI pieces: error display, output formats, key=value options."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from modelport.errors import ModelportError

console = Console()
err_console = Console(stderr=True)

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


class CliError(click.ClickException):
    """A ModelportError as click shows it: ``Error: <message>`` (+ hint), its exit code."""

    def __init__(self, error: ModelportError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code  # type: ignore[misc]  # click sets it per instance too
        self.hint = error.hint

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)
        if self.hint:
            click.echo(f"Hint: {self.hint}", err=True)


class ModelportGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ModelportError as exc:
            raise CliError(exc) from exc
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            if os.environ.get("MODELPORT_DEBUG"):
                raise
            raise CliError(
                ModelportError(
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    hint="run again with MODELPORT_DEBUG=1 for the traceback",
                )
            ) from exc


def parse_pairs(
    _ctx: click.Context | None, param: click.Parameter | None, values: Sequence[str]
) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            name = param.name if param else "option"
            raise click.BadParameter(f"{item!r} is not of the form key=value", param_hint=name)
        out[key] = value
    return out


def emit(data: Any, output: str, table: Callable[[Any], Table | str]) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        console.print(table(data))


def kv_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
