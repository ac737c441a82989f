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
    """JSON, a table on a terminal, or plain lines when stdout is a pipe or a file.

    A table never cuts a value (a scoring URI, a key, a name): long cells fold.
    """
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    shown = table(data)
    if isinstance(shown, str):
        sys.stdout.write(shown + "\n")
    elif console.is_terminal:
        for column in shown.columns:
            column.overflow, column.no_wrap = "fold", False
        console.print(shown)
    else:
        sys.stdout.write(plain(shown))


def plain(table: Table) -> str:
    """A table as text lines: cells separated by two spaces, nothing cut, no box."""
    columns = [[str(c) for c in column.cells] for column in table.columns]
    header = [str(column.header) for column in table.columns] if table.show_header else None
    rows = [list(row) for row in zip(*columns, strict=True)]
    lines = [header] if header else []
    lines += rows
    if not lines:
        return ""
    widths = [max(len(line[i].split("\n")[0]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        parts = [cell.replace("\n", "; ") for cell in line]
        padded = [p.ljust(w) for p, w in zip(parts[:-1], widths[:-1], strict=True)]
        out.append("  ".join([*padded, parts[-1]]).rstrip())
    title = f"{table.title}\n" if table.title else ""
    return title + "\n".join(out) + "\n"


def kv_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
