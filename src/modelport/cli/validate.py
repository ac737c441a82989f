"""``modelport validate``: check v1 configuration files before deploying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, err_console, output_option
from modelport.errors import ConfigError, EnvironmentBuildError, InvalidInputError
from modelport.home import home_dir


def _settings_table(data: dict[str, Any]) -> Table:
    table = Table("setting", "value", title=data.get("file"))
    for key, value in data["settings"].items():
        table.add_row(key, "" if value is None else str(value))
    return table


@click.command("validate")
@click.option("--dc", "--deploy-config-file", "dc", help="deploymentconfig.json or .yml")
@click.option("--ic", "--inference-config-file", "ic", help="inferenceconfig.json or .yml")
@output_option
def validate(dc: str | None, ic: str | None, output: str) -> None:
    """Check configuration files against the v1 rules; show the settings in effect."""
    from modelport.control.targets import local_target
    from modelport.envs.builder import build_problems
    from modelport.sdk.environment import read_text
    from modelport.sdk.inference import InferenceConfig
    from modelport.spec import support
    from modelport.spec.deployment import deployment_config_from_document
    from modelport.spec.document import parse_document
    from modelport.spec.environment import EnvironmentSpec

    if not dc and not ic:
        raise InvalidInputError("give a file to check with --dc and/or --ic")
    target = local_target(home_dir())
    results: list[dict[str, Any]] = []
    if dc:
        doc = parse_document(read_text(dc), Path(dc).name)
        given = deployment_config_from_document(doc, Path(dc).name)
        refused = support.refusals(given)
        if refused:
            raise ConfigError("\n".join(f"{Path(dc).name}: {r}" for r in refused))
        config = given.resolved()
        settings = config.model_dump(exclude={"primary_key", "secondary_key"})
        settings["computeType"] = config.compute_type
        notes = support.deployment_warnings(given, target)
        results.append({"file": dc, "settings": settings, "warnings": notes})
    if ic:
        inference = InferenceConfig.from_file(ic).for_service("validate")
        env = inference.environment
        problems = build_problems(EnvironmentSpec.model_validate(env.model_dump())) if env else []
        if problems:
            raise EnvironmentBuildError(
                f"{Path(ic).name}: the environment will not build here:\n" + "\n".join(problems)
            )
        results.append(
            {
                "file": ic,
                "settings": inference.spec.model_dump(exclude={"environment"})
                | {"environment": inference.environment.name if inference.environment else None},
                "warnings": support.inference_warnings(inference.spec, target),
            }
        )
    for result in results:
        for note in result["warnings"]:
            err_console.print(f"Warning: {Path(result['file']).name}: {note}", markup=False)
    if output == "json":
        emit(results, output, _settings_table)
        return
    for result in results:
        console.print(f"{result['file']}: valid")
        console.print(_settings_table(result))
