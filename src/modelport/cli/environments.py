"""``modelport environment ...``"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, kv_text, output_option, parse_pairs
from modelport.errors import InvalidInputError


@click.group("environment")
def environment_group() -> None:
    """Register, list and show environments."""


def _client() -> Any:
    from modelport.sdk.workspace import Workspace

    return Workspace.from_config().client


def _envs_table(items: list[dict[str, Any]]) -> Table:
    table = Table("name", "version", "python", "packages", "content hash", "created")
    for e in items:
        python = e["definition"]["python"]
        deps = (python.get("condaDependencies") or {}).get("dependencies") or []
        count = sum(len(d.get("pip", [])) if isinstance(d, dict) else 1 for d in deps)
        table.add_row(
            e["name"],
            e["version"],
            _python_version(deps),
            str(count),
            e["contentHash"][:12],
            e["createdTime"][:19],
        )
    return table


def _python_version(deps: list[Any]) -> str:
    for dep in deps:
        if isinstance(dep, str) and dep.replace(" ", "").startswith("python"):
            return dep
    return "(server's)"


def _env_table(e: dict[str, Any]) -> Table:
    definition = e["definition"]
    table = Table("field", "value", show_header=False)
    table.add_row("name", e["name"])
    table.add_row("version", e["version"])
    table.add_row("content hash", e["contentHash"])
    table.add_row("created", e["createdTime"])
    table.add_row("environment variables", kv_text(definition["environmentVariables"]))
    conda = definition["python"].get("condaDependencies") or {}
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            table.add_row("pip", "\n".join(dep.get("pip", [])))
        else:
            table.add_row("conda", str(dep))
    if definition["docker"].get("baseImage"):
        table.add_row("base image", definition["docker"]["baseImage"])
    return table


@environment_group.command("register")
@click.option("-n", "--name", help="Environment name (required unless -f gives one).")
@click.option("--pip-requirements", "pip_file", help="A pip requirements file.")
@click.option("--conda-file", help="A conda environment YAML.")
@click.option("-f", "--file", "env_file", help="A v1 Environment definition (JSON or YAML).")
@click.option(
    "--env-var",
    "env_vars",
    multiple=True,
    callback=parse_pairs,
    help="KEY=VALUE set in the replicas, repeatable.",
)
@output_option
def register(
    name: str | None,
    pip_file: str | None,
    conda_file: str | None,
    env_file: str | None,
    env_vars: dict[str, str],
    output: str,
) -> None:
    """Register an environment; an unchanged definition keeps its version."""
    from modelport.sdk.environment import Environment

    sources = [s for s in (pip_file, conda_file, env_file) if s]
    if len(sources) != 1:
        raise InvalidInputError("give exactly one of --pip-requirements, --conda-file, -f")
    if env_file:
        env = Environment.load_from_file(env_file)
        if name:
            env = env.model_copy(update={"name": name})
    elif not name:
        raise InvalidInputError("give the environment a name with -n NAME")
    elif pip_file:
        env = Environment.from_pip_requirements(name, pip_file)
    else:
        env = Environment.from_conda_specification(name, str(conda_file))
    if env_vars:
        env = env.model_copy(
            update={"environment_variables": {**env.environment_variables, **env_vars}}
        )
    env = Environment.from_document(env.model_dump(by_alias=True))  # re-validate the name
    data = _client().call("POST", "/api/v1/environments", json=env.model_dump(by_alias=True))
    if output == "json":
        emit(data, output, _env_table)
    else:
        console.print(
            f"Environment [bold]{data['name']}[/bold] version {data['version']} "
            f"(content hash {data['contentHash'][:12]})"
        )


@environment_group.command("list")
@click.option("-n", "--name", help="Only this environment.")
@click.option("--all-versions", is_flag=True, help="Every version, not only the latest.")
@output_option
def list_environments(name: str | None, all_versions: bool, output: str) -> None:
    """List environments (the latest version of each by default)."""
    params: dict[str, Any] = {"latest": not all_versions}
    if name:
        params["name"] = name
    data = _client().call("GET", "/api/v1/environments", params=params)
    emit(data["value"], output, _envs_table)


@environment_group.command("show")
@click.option("-n", "--name", required=True, help="Environment name.")
@click.option("-v", "--version", type=click.IntRange(min=1), help="Version (default: latest).")
@output_option
def show(name: str, version: int | None, output: str) -> None:
    """Show one environment version."""
    from urllib.parse import quote

    path = f"/api/v1/environments/{quote(name)}"
    if version is not None:
        path += f"/versions/{version}"
    emit(_client().call("GET", path), output, _env_table)
