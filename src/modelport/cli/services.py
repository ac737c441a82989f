"""``modelport model deploy`` and ``modelport service ...``"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.table import Table

from modelport.cli.base import console, emit, output_option
from modelport.errors import InvalidInputError

T = TypeVar("T")

if TYPE_CHECKING:
    from modelport.sdk.inference import InferenceConfig
    from modelport.sdk.webservice import Webservice
    from modelport.sdk.workspace import Workspace
    from modelport.spec.deployment import DeploymentConfiguration


def _workspace() -> Workspace:
    from modelport.sdk.workspace import Workspace

    return Workspace.from_config()


def _service(name: str) -> Webservice:
    from modelport.sdk.webservice import Webservice

    return Webservice(_workspace(), name)


def _inference_config(path: str, env: str | None, env_version: str | None) -> InferenceConfig:
    from modelport.sdk.environment import Environment
    from modelport.sdk.inference import InferenceConfig

    config = InferenceConfig.from_file(path)
    if env is None:
        return config
    if config.environment is not None:
        raise InvalidInputError("the inference config has an environment already; drop -e")
    environment = Environment.get(_workspace(), env, env_version)
    values = config.spec.model_dump(exclude_none=True, exclude={"environment"})
    return InferenceConfig(**values, environment=environment)


def _deployment_config(path: str) -> DeploymentConfiguration:
    from modelport.sdk.environment import read_text
    from modelport.spec.deployment import deployment_config_from_document
    from modelport.spec.document import parse_document

    name = Path(path).name
    return deployment_config_from_document(parse_document(read_text(path), name), name)


def _wait(service: Webservice) -> None:
    with console.status(f"waiting for {service.name} ..."):
        service.wait_for_deployment(show_output=True)
    console.print(f"Service [bold]{service.name}[/bold] is {service.state}: {service.scoring_uri}")


ic_option = click.option(
    "--ic", "-ic", "--inference-config-file", "ic", help="inferenceconfig.json/.yml"
)
dc_option = click.option(
    "--dc", "-dc", "--deploy-config-file", "dc", help="deploymentconfig.json/.yml"
)
wait_option = click.option(
    "--no-wait", is_flag=True, help="Return without waiting for the roll-out."
)


@click.command("deploy")
@click.option("-n", "--name", required=True, help="Service name.")
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Model NAME:VERSION (or NAME for the latest), repeatable.",
)
@ic_option
@dc_option
@click.option(
    "--ct",
    "-ct",
    "--compute-target",
    "compute_target",
    default="local",
    show_default=True,
    help="Compute target.",
)
@click.option("-e", "--environment-name", "env", help="A registered environment to run in.")
@click.option("--ev", "--environment-version", "env_version", help="Its version (default: latest).")
@click.option("--overwrite", is_flag=True, help="Replace a service of the same name.")
@wait_option
def deploy(
    name: str,
    models: tuple[str, ...],
    ic: str | None,
    dc: str | None,
    compute_target: str,
    env: str | None,
    env_version: str | None,
    overwrite: bool,
    no_wait: bool,
) -> None:
    """Deploy models as a web service (v1: az ml model deploy)."""
    from modelport.sdk.model import Model

    if ic is None:
        raise InvalidInputError("give the inference config with --ic inferenceconfig.json")
    workspace = _workspace()
    inference = _inference_config(ic, env, env_version)
    config = _deployment_config(dc) if dc else None
    registered = [Model(workspace, id=m) for m in models]
    service = Model.deploy(
        workspace, name, registered, inference, config, compute_target, overwrite
    )
    if no_wait:
        console.print(f"Deploying {name}: {service.state}")
        return
    _wait(service)


@click.group("service")
def service_group() -> None:
    """Show, score, update and delete web services."""


def _services_table(items: list[dict[str, Any]]) -> Table:
    table = Table("name", "state", "type", "replicas", "scoring uri")
    for s in items:
        ready = sum(r["state"] == "Ready" for r in s["replicas"])
        table.add_row(
            s["name"],
            s["state"],
            s["computeType"],
            f"{ready}/{len(s['replicas'])}",
            s["scoringUri"],
        )
    return table


def _service_table(s: dict[str, Any]) -> Table:
    table = Table("field", "value", show_header=False)
    for key in (
        "name",
        "state",
        "computeType",
        "scoringUri",
        "swaggerUri",
        "authEnabled",
        "generation",
        "createdTime",
        "updatedTime",
    ):
        table.add_row(key, str(s[key]))
    table.add_row("models", ", ".join(s["models"]))
    env = s.get("environment")
    table.add_row(
        "environment", f"{env['name']} ({env['contentHash'][:12]})" if env else "(server's)"
    )
    table.add_row(
        "replicas",
        "\n".join(
            f"#{r['index']} :{r['port']} {r['state']} restarts={r['restarts']}"
            for r in s["replicas"]
        ),
    )
    if s.get("tags") or s.get("properties"):
        table.add_row("tags", ", ".join(f"{k}={v}" for k, v in s["tags"].items()))
        table.add_row("properties", ", ".join(f"{k}={v}" for k, v in s["properties"].items()))
    for note in s.get("warnings") or []:
        table.add_row("warning", note)
    status = s.get("deploymentStatus") or {}
    if status.get("progress"):
        table.add_row("progress", status["progress"])
    if status.get("messages") and status.get("applied") != status.get("generation"):
        table.add_row("roll-out", "\n".join(status["messages"][-15:]))  # as it happens
    if s.get("error"):
        table.add_row("error", s["error"])
    return table


name_option = click.option("-n", "--name", required=True, help="Service name.")


@service_group.command("list")
@output_option
def list_services(output: str) -> None:
    """List services."""
    from modelport.sdk.webservice import Webservice

    emit([s.serialize() for s in Webservice.list(_workspace())], output, _services_table)


@service_group.command("show")
@name_option
@output_option
def show(name: str, output: str) -> None:
    """Show one service: state, scoring URI, replicas, error."""
    emit(_service(name).serialize(), output, _service_table)


lines_option = click.option(
    "-l", "--num-lines", default=5000, show_default=True, type=click.IntRange(min=1)
)


REQUESTS_TAIL = 100  # the requests shown (before following) without --tail
follow_option = click.option(
    "-f", "--follow", is_flag=True, help="Go on printing lines as they are written (Ctrl-C ends)."
)
since_option = click.option("--since", help="Only what is newer than this: 30s, 10m, 2h, 1d.")
tail_option = click.option(
    "--tail", type=click.IntRange(min=1), help="Only the last N lines (or requests)."
)


@service_group.command("logs")
@name_option
@lines_option
@follow_option
@click.option("--replica", type=click.IntRange(min=0), help="Only this replica's lines (index).")
@since_option
@tail_option
def logs(
    name: str,
    num_lines: int,
    follow: bool,
    replica: int | None,
    since: str | None,
    tail: int | None,
) -> None:
    """Print the replicas' logs.  With --follow, --replica, --since or --tail, their
    lines merged, each after its replica's name."""
    service = _service(name)
    if follow:
        _follow(service.follow_logs(replica, since, tail), lambda line: line)
        return
    click.echo(service.get_logs(num_lines, replica=replica, since=since, tail=tail))


@service_group.command("requests")
@name_option
@follow_option
@click.option("--status", help="Only these answers: 5xx, 4xx, or one status such as 200.")
@since_option
@tail_option
@output_option
def requests(
    name: str,
    follow: bool,
    status: str | None,
    since: str | None,
    tail: int | None,
    output: str,
) -> None:
    """The router's log of scoring requests: time, status, latency, queue wait, replica,
    sizes and request ids (never a key or a query string)."""
    service = _service(name)
    show = _request_json if output == "json" else _request_line
    last = tail if tail is not None else REQUESTS_TAIL
    if follow:
        _follow(service.follow_requests(status, since, last), show)
        return
    for doc in service.get_requests(status, since, last):
        click.echo(show(doc))


def _request_line(doc: dict[str, Any]) -> str:
    version = f"/{doc['version']}" if doc.get("version") else ""
    return (
        f"{doc.get('time')} {doc.get('service')}{version} {doc.get('status')} "
        f"{doc.get('latencyMs')} ms (queued {doc.get('queueWaitMs')} ms) "
        f"replica={doc.get('replica') or '-'} in={doc.get('bytesIn')} out={doc.get('bytesOut')} "
        f"id={doc.get('requestId') or '-'} client-id={doc.get('clientRequestId') or '-'}"
    )


def _request_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def _follow(items: Iterator[T], show: Callable[[T], str]) -> None:
    """Print each item as it comes, until the server ends or Ctrl-C does."""
    try:
        for item in items:
            click.echo(show(item))
    except KeyboardInterrupt:
        pass
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


@service_group.command("get-logs")
@name_option
@lines_option
def get_logs(name: str, num_lines: int) -> None:
    """Print the replicas' logs (v1: az ml service get-logs)."""
    click.echo(_service(name).get_logs(num_lines))


@service_group.command("events")
@name_option
@output_option
def events(name: str, output: str) -> None:
    """Why the replica count changed: every autoscaling decision with its inputs."""

    def table(items: list[dict[str, Any]]) -> Table:
        t = Table("time", "change", "reason", "utilization", "busy", "queued", "needed")
        for e in items:
            i = e["inputs"]
            t.add_row(
                e["time"][11:19],
                f"{e['fromReplicas']} -> {e['toReplicas']}",
                e["reason"],
                f"{i['utilization']:.2f}",
                f"{i['busy']:.2f}",
                str(i["queued"]),
                str(i["needed"]),
            )
        return t

    emit(_service(name).get_scaling_events(), output, table)


@service_group.command("keys")
@name_option
@output_option
def keys(name: str, output: str) -> None:
    """Print the primary and secondary keys."""
    _show_keys(name, output)


@service_group.command("get-keys")
@name_option
@output_option
def get_keys(name: str, output: str) -> None:
    """Print the primary and secondary keys (v1: az ml service get-keys)."""
    _show_keys(name, output)


@service_group.command("get-access-token")
@name_option
@output_option
def get_access_token(name: str, output: str) -> None:
    """Print a scoring token for a token-auth service, and when to renew it."""
    from modelport.cli.tokens import emit_token

    emit_token(_service(name).get_access_token(), output)


def _show_keys(name: str, output: str) -> None:
    emit_keys(*_service(name).get_keys(), output)


def emit_keys(primary: str, secondary: str, output: str) -> None:
    def table(data: dict[str, str]) -> Table:
        t = Table("key", "value")
        for k, v in data.items():
            t.add_row(k, v)
        return t

    emit({"primaryKey": primary, "secondaryKey": secondary}, output, table)


@service_group.command("regen-key")
@name_option
@click.option("-k", "--key", required=True, help="Primary or Secondary.")
@click.option("--set-key", help="Use this value instead of a generated one.")
def regen_key(name: str, key: str, set_key: str | None) -> None:
    """Regenerate one key (the other keeps working); prints the new one."""
    service = _service(name)
    service.regen_key(key, set_key)
    primary, secondary = service.get_keys()
    value = primary if key.lower() == "primary" else secondary
    console.print(f"Regenerated the {key.lower()} key of {name}:")
    click.echo(value)


@service_group.command("run")
@name_option
@click.option("-d", "--input-data", help="The request body (JSON).")
@click.option("-f", "--input-file", help="A file holding the request body.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
    help="The answer as compact JSON, or indented for reading.",
)
def run(name: str, input_data: str | None, input_file: str | None, output: str) -> None:
    """Score: send a request with the primary key (or a token) and print the answer."""
    from modelport.sdk.environment import read_text

    if (input_data is None) == (input_file is None):
        raise InvalidInputError("give the body with exactly one of -d or -f")
    body = input_data if input_data is not None else read_text(str(input_file))
    answer = _service(name).run(body)
    click.echo(json.dumps(answer, indent=2 if output == "table" else None))


@service_group.command("update")
@name_option
@click.option("-m", "--model", "models", multiple=True, help="Model NAME:VERSION, repeatable.")
@ic_option
@dc_option
@wait_option
def update(
    name: str, models: tuple[str, ...], ic: str | None, dc: str | None, no_wait: bool
) -> None:
    """Roll out new models, code or settings with no failed request."""
    from modelport.sdk.model import Model

    service = _service(name)
    workspace = service.workspace
    service.update(
        models=[Model(workspace, id=m) for m in models] or None,
        inference_config=_inference_config(ic, None, None) if ic else None,
        deployment_config=_deployment_config(dc) if dc else None,
    )
    if not no_wait:
        _wait(service)


@service_group.command("delete")
@name_option
@wait_option
def delete(name: str, no_wait: bool) -> None:
    """Delete a service: drain its replicas, then remove it."""
    service = _service(name)
    if no_wait:
        service.delete(wait=False)
        console.print(f"Deleting service {name}")
        return
    with console.status(f"deleting {name} ..."):
        service.delete()
    console.print(f"Deleted service {name}")
