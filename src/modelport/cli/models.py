"""``modelport model ...``"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, kv_text, output_option, parse_pairs
from modelport.errors import InvalidInputError

if TYPE_CHECKING:
    from modelport.sdk.model import Model


@click.group("model")
def model_group() -> None:
    """Register, list, show, download and delete models."""


def _workspace() -> Any:
    from modelport.sdk.workspace import Workspace

    return Workspace.from_config()


def _models_table(items: list[dict[str, Any]]) -> Table:
    table = Table("name", "version", "framework", "tags", "size", "created")
    for m in items:
        table.add_row(
            m["name"],
            str(m["version"]),
            m.get("modelFramework") or "",
            kv_text(m["tags"]),
            str(m["size"]),
            m["createdTime"][:19],
        )
    return table


def _model_table(m: dict[str, Any]) -> Table:
    table = Table("field", "value", show_header=False)
    for key in (
        "id",
        "name",
        "version",
        "kind",
        "basename",
        "description",
        "modelFramework",
        "modelFrameworkVersion",
        "createdTime",
        "size",
    ):
        table.add_row(key, "" if m.get(key) is None else str(m[key]))
    table.add_row("tags", kv_text(m["tags"]))
    table.add_row("properties", kv_text(m["properties"]))
    table.add_row("files", "\n".join(f["path"] for f in m["files"]))
    return table


def _select(workspace: Any, name: str | None, version: int | None, model_id: str | None) -> Model:
    from modelport.sdk.model import Model

    if model_id is None and name is None:
        raise click.UsageError("give the model with -n NAME [-v VERSION] or -i NAME:VERSION")
    return Model(workspace, name=name, id=model_id, version=version)


name_option = click.option("-n", "--name", help="Model name.")
version_option = click.option("-v", "--version", type=click.IntRange(min=1), help="Version.")
id_option = click.option("-i", "--id", "model_id", help="Model id NAME:VERSION.")


@model_group.command("register")
@click.option("-n", "--name", required=True, help="Model name.")
@click.option("-p", "--path", "model_path", required=True, help="File or folder to register.")
@click.option("--tag", "tags", multiple=True, callback=parse_pairs, help="key=value, repeatable.")
@click.option(
    "--property",
    "properties",
    multiple=True,
    callback=parse_pairs,
    help="key=value, repeatable; properties cannot change once set.",
)
@click.option("-d", "--description", help="Description.")
@click.option("--framework", help="Model framework (ScikitLearn, PyTorch, Onnx, ...).")
@click.option("--framework-version", help="Model framework version.")
@output_option
def register(
    name: str,
    model_path: str,
    tags: dict[str, str],
    properties: dict[str, str],
    description: str | None,
    framework: str | None,
    framework_version: str | None,
    output: str,
) -> None:
    """Register a file or folder as the next version of a model."""
    from modelport.sdk.model import Model

    model = Model.register(
        _workspace(),
        model_path,
        name,
        tags=tags,
        properties=properties,
        description=description,
        model_framework=framework,
        model_framework_version=framework_version,
    )
    if output == "json":
        emit(model.serialize(), output, _model_table)
    else:
        console.print(f"Registered model [bold]{model.id}[/bold]")


@model_group.command("list")
@click.option("-n", "--name", help="Only this model.")
@click.option("--tag", "tags", multiple=True, help="key or key=value, repeatable.")
@click.option("--property", "properties", multiple=True, help="key or key=value, repeatable.")
@click.option("--latest", is_flag=True, help="Only the latest version of each model.")
@output_option
def list_models(
    name: str | None, tags: tuple[str, ...], properties: tuple[str, ...], latest: bool, output: str
) -> None:
    """List model versions."""
    from modelport.sdk.model import Model

    models = Model.list(
        _workspace(), name=name, tags=list(tags), properties=list(properties), latest=latest
    )
    emit([m.serialize() for m in models], output, _models_table)


@model_group.command("show")
@name_option
@version_option
@id_option
@output_option
def show(name: str | None, version: int | None, model_id: str | None, output: str) -> None:
    """Show one model version (the latest when no version is given)."""
    emit(_select(_workspace(), name, version, model_id).serialize(), output, _model_table)


@model_group.command("download")
@name_option
@version_option
@id_option
@click.option("-t", "--target-dir", default=".", show_default=True, help="Folder to write into.")
@click.option("--overwrite", is_flag=True, help="Replace what is already there.")
def download(
    name: str | None, version: int | None, model_id: str | None, target_dir: str, overwrite: bool
) -> None:
    """Download a model version's file or folder."""
    model = _select(_workspace(), name, version, model_id)
    path = model.download(target_dir, exist_ok=overwrite)
    console.print(f"Downloaded {model.id} to {path}")


@model_group.command("update")
@name_option
@version_option
@id_option
@click.option("--add-tag", "add_tags", multiple=True, callback=parse_pairs, help="key=value.")
@click.option("--remove-tag", "remove_tags", multiple=True, help="Tag key to remove.")
@click.option(
    "--add-property", "add_properties", multiple=True, callback=parse_pairs, help="key=value."
)
@click.option("-d", "--description", help="New description.")
@output_option
def update(
    name: str | None,
    version: int | None,
    model_id: str | None,
    add_tags: dict[str, str],
    remove_tags: tuple[str, ...],
    add_properties: dict[str, str],
    description: str | None,
    output: str,
) -> None:
    """Change tags and description, add properties."""
    model = _select(_workspace(), name, version, model_id)
    if add_tags:
        model.add_tags(add_tags)
    if remove_tags:
        model.remove_tags(remove_tags)
    if add_properties:
        model.add_properties(add_properties)
    if description is not None:
        model.update(description=description)
    emit(model.serialize(), output, _model_table)


@model_group.command("delete")
@name_option
@version_option
@id_option
def delete(name: str | None, version: int | None, model_id: str | None) -> None:
    """Delete one model version."""
    if model_id is None and version is None:
        raise InvalidInputError("say which version to delete: -v VERSION or -i NAME:VERSION")
    model = _select(_workspace(), name, version, model_id)
    model.delete()
    console.print(f"Deleted model {model.id}")
