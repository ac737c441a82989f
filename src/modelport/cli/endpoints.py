"""``modelport endpoint ...``: versions behind one URL, traffic, comparison, promotion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, err_console, output_option, parse_pairs
from modelport.cli.services import (
    _deployment_config,
    _inference_config,
    _workspace,
    dc_option,
    emit_keys,
    ic_option,
    lines_option,
    wait_option,
)
from modelport.errors import InvalidInputError

if TYPE_CHECKING:
    from modelport.sdk.endpoint import AksEndpoint


def _endpoint(name: str) -> AksEndpoint:
    from modelport.sdk.endpoint import AksEndpoint

    return AksEndpoint(_workspace(), name)


def _wait(endpoint: AksEndpoint) -> None:
    """Wait for the roll-out, saying so on stderr (stdout carries the -o answer)."""
    with err_console.status(f"waiting for {endpoint.name} ..."):
        endpoint.wait_for_deployment(show_output=True)
    err_console.print(
        f"Endpoint [bold]{endpoint.name}[/bold] is {endpoint.state}: {endpoint.scoring_uri}"
    )


name_option = click.option("-n", "--name", required=True, help="Endpoint name.")
version_option = click.option(
    "--version-name", "--vn", "version", required=True, help="Version name."
)
models_option = click.option(
    "-m", "--model", "models", multiple=True, help="Model NAME:VERSION, repeatable."
)
rules_options = [
    click.option(
        "--traffic-percentile",
        "--tp",
        "traffic",
        type=click.IntRange(0, 100),
        help="Its percentage of the traffic (the default version takes what is left).",
    ),
    click.option("--is-default", is_flag=True, default=None, help="Make it the default."),
    click.option(
        "--is-control-version-type",
        "--is-control",
        "is_control",
        is_flag=True,
        default=None,
        help="Make it the control (the others become treatments).",
    ),
    click.option(
        "--shadow-percentile",
        type=click.IntRange(0, 100),
        help="Mirror this percentage of the live traffic to it, answers compared, never returned.",
    ),
]


def _rules(func: Any) -> Any:
    for option in reversed(rules_options):
        func = option(func)
    return func


@click.group("endpoint")
def endpoint_group() -> None:
    """Endpoints: up to six versions behind one scoring URI, split by percentage."""


# -- tables ------------------------------------------------------------------------------
def _versions_table(data: dict[str, Any]) -> Table:
    table = Table(
        "version", "type", "default", "traffic %", "share %", "shadow %", "state", "replicas"
    )
    for v in data["versions"].values():
        ready = sum(r["state"] == "Ready" for r in v["replicas"])
        table.add_row(
            v["name"],
            v["versionType"],
            "yes" if v["isDefault"] else "",
            str(v["trafficPercentile"]),
            str(v["share"]),
            str(v["shadowPercentile"] or ""),
            v["state"],
            f"{ready}/{len(v['replicas'])}",
        )
    return table


def _endpoints_table(items: list[dict[str, Any]]) -> Table:
    table = Table("name", "state", "versions", "scoring uri")
    for e in items:
        shares = ", ".join(f"{n} {v['share']}%" for n, v in e["versions"].items())
        table.add_row(e["name"], e["state"], shares, e["scoringUri"])
    return table


def _endpoint_table(e: dict[str, Any]) -> Table:
    table = Table("field", "value", show_header=False)
    for key in ("name", "state", "computeType", "scoringUri", "swaggerUri", "authEnabled"):
        table.add_row(key, str(e[key]))
    if e.get("sticky"):
        table.add_row("sticky", ", ".join(f"{k} {v}" for k, v in e["sticky"].items()))
    table.add_row(
        "versions",
        "\n".join(
            f"{n}: {v['versionType']}{' (default)' if v['isDefault'] else ''}, "
            f"{v['share']}% of the traffic"
            + (f", shadow of {v['shadowPercentile']}%" if v["shadowPercentile"] else "")
            + f", {v['state']}"
            for n, v in e["versions"].items()
        ),
    )
    promotion = e.get("promotion")
    if promotion:
        table.add_row(
            "promotion",
            f"{promotion['version']}: {promotion['state']} at step {promotion['step']} of "
            f"{len(promotion['steps'])} ({promotion['trafficPercentile']}%)"
            + (f": {promotion['reason']}" if promotion.get("reason") else ""),
        )
    if e.get("tags"):
        table.add_row("tags", ", ".join(f"{k}={v}" for k, v in e["tags"].items()))
    if e.get("error"):
        table.add_row("error", e["error"])
    return table


# -- the endpoint -------------------------------------------------------------------------
@endpoint_group.command("create")
@name_option
@click.option("--version-name", "--vn", "version", help="The first version's name.")
@models_option
@ic_option
@dc_option
@click.option("--ct", "-ct", "--compute-target", "compute_target", default="local")
@click.option(
    "--traffic-percentile", "--tp", "traffic", type=click.IntRange(0, 100), help="Its percentage."
)
@click.option("-e", "--environment-name", "env", help="A registered environment to run in.")
@click.option("--ev", "--environment-version", "env_version", help="Its version.")
@wait_option
@output_option
def create(
    name: str,
    version: str | None,
    models: tuple[str, ...],
    ic: str | None,
    dc: str | None,
    compute_target: str,
    traffic: int | None,
    env: str | None,
    env_version: str | None,
    no_wait: bool,
    output: str,
) -> None:
    """Create an endpoint with its first version (a deploymentconfig of computeType
    AKSENDPOINT; the version is the default and the control)."""
    from modelport.sdk.endpoint import AksEndpoint
    from modelport.sdk.model import Model
    from modelport.spec.deployment import AksEndpointDeploymentConfiguration

    if ic is None or not models:
        raise InvalidInputError("give the models with -m and the inference config with --ic")
    workspace = _workspace()
    values: dict[str, Any] = {}
    if dc is not None:
        given = _deployment_config(dc)
        if not isinstance(given, AksEndpointDeploymentConfiguration):
            raise InvalidInputError(
                f"{dc}: an endpoint needs computeType AKSENDPOINT (got {given.compute_type})"
            )
        values = given.given()
    if version is not None:
        values["version_name"] = version
    if traffic is not None:
        values["traffic_percentile"] = traffic
    config = AksEndpointDeploymentConfiguration.create(values)
    endpoint = Model.deploy(
        workspace,
        name,
        [Model(workspace, id=m) for m in models],
        _inference_config(ic, env, env_version),
        config,
        compute_target,
    )
    assert isinstance(endpoint, AksEndpoint)
    if not no_wait:
        _wait(endpoint)
    emit(endpoint.serialize(), output, _versions_table)


@endpoint_group.command("list")
@output_option
def list_endpoints(output: str) -> None:
    """List endpoints and how their traffic is shared."""
    from modelport.sdk.endpoint import AksEndpoint

    emit([e.serialize() for e in AksEndpoint.list(_workspace())], output, _endpoints_table)


@endpoint_group.command("show")
@name_option
@output_option
def show(name: str, output: str) -> None:
    """Show an endpoint: its versions, their shares and states, a promotion."""
    emit(_endpoint(name).serialize(), output, _endpoint_table)


@endpoint_group.command("update")
@name_option
@click.option("--auth/--no-auth", "auth", default=None, help="Key authentication on or off.")
@click.option("--description")
@click.option("--tag", "tags", multiple=True, callback=parse_pairs, help="key=value (replaces).")
@click.option("--property", "properties", multiple=True, callback=parse_pairs, help="key=value.")
@click.option("--sticky-header", help="Keep clients with this request header on one version.")
@click.option("--sticky-cookie", help="Keep clients with this cookie on one version.")
@click.option("--shadow-tolerance", type=click.FloatRange(min=0), help="Numeric tolerance.")
@output_option
def update(
    name: str,
    auth: bool | None,
    description: str | None,
    tags: dict[str, str],
    properties: dict[str, str],
    sticky_header: str | None,
    sticky_cookie: str | None,
    shadow_tolerance: float | None,
    output: str,
) -> None:
    """Change the endpoint's own settings (its versions: endpoint version update)."""
    endpoint = _endpoint(name)
    endpoint.update(
        auth_enabled=auth,
        description=description,
        tags=tags or None,
        properties=properties or None,
        sticky_header=sticky_header,
        sticky_cookie=sticky_cookie,
        shadow_tolerance=shadow_tolerance,
    )
    emit(endpoint.serialize(), output, _endpoint_table)


@endpoint_group.command("delete")
@name_option
@wait_option
def delete(name: str, no_wait: bool) -> None:
    """Delete the endpoint and every version (their replicas drain first)."""
    endpoint = _endpoint(name)
    if no_wait:
        endpoint.delete(wait=False)
        console.print(f"Deleting endpoint {name}")
        return
    with console.status(f"deleting {name} ..."):
        endpoint.delete()
    console.print(f"Deleted endpoint {name}")


@endpoint_group.command("keys")
@name_option
@output_option
def keys(name: str, output: str) -> None:
    """Print the endpoint's primary and secondary keys."""
    emit_keys(*_endpoint(name).get_keys(), output)


@endpoint_group.command("get-access-token")
@name_option
@output_option
def get_access_token(name: str, output: str) -> None:
    """Print a scoring token for a token-auth endpoint, and when to renew it."""
    from modelport.cli.tokens import emit_token

    emit_token(_endpoint(name).get_access_token(), output)


@endpoint_group.command("regen-key")
@name_option
@click.option("-k", "--key", required=True, help="Primary or Secondary.")
@click.option("--set-key", help="Use this value instead of a generated one.")
def regen_key(name: str, key: str, set_key: str | None) -> None:
    """Regenerate one key (the other keeps working); prints the new one."""
    endpoint = _endpoint(name)
    endpoint.regen_key(key, set_key)
    primary, secondary = endpoint.get_keys()
    click.echo(primary if key.lower() == "primary" else secondary)


@endpoint_group.command("run")
@name_option
@click.option("-d", "--input-data", help="The request body (JSON).")
@click.option("--version-name", "--vn", "version", help="Pin this version.")
def run(name: str, input_data: str | None, version: str | None) -> None:
    """Score through the endpoint (the split's version, or the one pinned)."""
    if input_data is None:
        raise InvalidInputError("give the body with -d")
    endpoint = _endpoint(name)
    target = endpoint._version(version) if version else endpoint
    click.echo(json.dumps(target.run(input_data)))


@endpoint_group.command("logs")
@name_option
@click.option("--version-name", "--vn", "version", help="Whose logs (default: the default's).")
@lines_option
def logs(name: str, version: str | None, num_lines: int) -> None:
    """Print one version's replica logs."""
    click.echo(_endpoint(name).get_logs(num_lines, version=version))


@endpoint_group.command("events")
@name_option
@output_option
def events(name: str, output: str) -> None:
    """What happened to the traffic: promotion steps, roll-backs and their figures."""

    def table(items: list[dict[str, Any]]) -> Table:
        t = Table("time", "event", "message")
        for e in items:
            t.add_row(e["time"][11:19], e["kind"], e["message"])
        return t

    emit(_endpoint(name).get_events(), output, table)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@endpoint_group.command("compare")
@name_option
@click.option("--window", default=300.0, type=click.FloatRange(min=1, max=3600), show_default=True)
@output_option
def compare(name: str, window: float, output: str) -> None:
    """Treatments against the control over a window: requests, errors, latency, shadows."""

    def table(data: dict[str, Any]) -> Table:
        t = Table(
            "version",
            "type",
            "requests",
            "2xx",
            "4xx",
            "5xx",
            "error %",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "rejected",
            "shadow agreement",
            "shadow Δ ms",
            title=f"{data['name']}: the last {data['windowSeconds']:g} s",
        )
        rows = sorted(data["versions"].items(), key=lambda kv: kv[1]["versionType"] != "Control")
        for n, v in rows:
            by = v.get("byClass") or {}
            shadow = v.get("shadow") or {}
            agreement = shadow.get("agreement")
            t.add_row(
                n,
                v["versionType"] + (" (shadow)" if v["shadowPercentile"] else ""),
                str(v.get("requests", 0)),
                str(by.get("2xx", 0)),
                str(by.get("4xx", 0)),
                str(by.get("5xx", 0)),
                f"{v.get('errorRate', 0) * 100:.1f}",
                _ms(v.get("p50Ms")),
                _ms(v.get("p95Ms")),
                _ms(v.get("p99Ms")),
                str(v.get("queueRejections", 0)),
                "-"
                if agreement is None
                else f"{agreement:.1%} of {shadow['compared']}"
                + (f", {shadow['shadowErrors']} errors" if shadow["shadowErrors"] else ""),
                _ms(shadow.get("latencyDeltaMs")),
            )
        return t

    emit(_endpoint(name).get_stats(window), output, table)


@endpoint_group.command("promote")
@name_option
@click.option("--version-name", "--vn", "version", help="The treatment to promote.")
@click.option("--steps", default="10,25,50,100", show_default=True, help="Percentages.")
@click.option("--step-seconds", default=60.0, type=click.FloatRange(min=0.1), show_default=True)
@click.option(
    "--max-error-rate-delta", default=0.01, type=click.FloatRange(0, 1), show_default=True
)
@click.option("--max-p99-ratio", default=1.5, type=click.FloatRange(min=0.01), show_default=True)
@click.option("--min-requests", default=20, type=click.IntRange(min=1), show_default=True)
@click.option("--wait", is_flag=True, help="Return when it is promoted or rolled back.")
@click.option("--cancel", is_flag=True, help="Stop the promotion in progress; roll back.")
@output_option
def promote(
    name: str,
    version: str | None,
    steps: str,
    step_seconds: float,
    max_error_rate_delta: float,
    max_p99_ratio: float,
    min_requests: int,
    wait: bool,
    cancel: bool,
    output: str,
) -> None:
    """Move traffic to a treatment step by step while it stays within bounds of the
    control; it becomes default and control at the end, or is rolled back at once."""
    endpoint = _endpoint(name)
    if cancel:
        endpoint.cancel_promotion()
        console.print(f"Cancelled the promotion on {name}: traffic went back to the control")
        return
    if version is None:
        raise InvalidInputError("give the treatment to promote with --version-name")
    try:
        percentages = [int(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise InvalidInputError(
            f"--steps takes percentages like 10,25,50,100 (got {steps!r})"
        ) from None
    result = endpoint.promote(
        version,
        percentages,
        step_seconds,
        max_error_rate_delta,
        max_p99_ratio,
        min_requests,
        wait=wait,
    )

    def table(data: dict[str, Any]) -> Table:
        t = Table("field", "value", show_header=False)
        for key in ("version", "control", "state", "step", "trafficPercentile", "reason"):
            t.add_row(key, str(data.get(key)))
        return t

    emit(result, output, table)


# -- versions -------------------------------------------------------------------------------
@endpoint_group.group("version")
def version_group() -> None:
    """Create, update, delete and list an endpoint's versions."""


@version_group.command("list")
@name_option
@output_option
def list_versions(name: str, output: str) -> None:
    """Versions with their type, percentage, share and state."""
    data = _endpoint(name).serialize()
    if output == "json":
        emit(list(data["versions"].values()), output, lambda _: "")
        return
    emit(data, output, _versions_table)


@version_group.command("create")
@name_option
@click.option("--version-name", "--vn", "version", help="Name (or versionName in --dc).")
@models_option
@ic_option
@dc_option
@_rules
@wait_option
@output_option
def create_version(
    name: str,
    version: str | None,
    models: tuple[str, ...],
    ic: str | None,
    dc: str | None,
    traffic: int | None,
    is_default: bool | None,
    is_control: bool | None,
    shadow_percentile: int | None,
    no_wait: bool,
    output: str,
) -> None:
    """Add a version (its own deployment) with its share of the traffic."""
    if ic is None or not models:
        raise InvalidInputError("give the models with -m and the inference config with --ic")
    _deploy_version(
        name,
        version,
        models,
        ic,
        dc,
        traffic,
        is_default,
        is_control,
        shadow_percentile,
        no_wait,
        output,
        new=True,
    )


@version_group.command("update")
@name_option
@version_option
@models_option
@ic_option
@dc_option
@_rules
@wait_option
@output_option
def update_version(
    name: str,
    version: str,
    models: tuple[str, ...],
    ic: str | None,
    dc: str | None,
    traffic: int | None,
    is_default: bool | None,
    is_control: bool | None,
    shadow_percentile: int | None,
    no_wait: bool,
    output: str,
) -> None:
    """Change a version's deployment or traffic; what is not given stays."""
    _deploy_version(
        name,
        version,
        models,
        ic,
        dc,
        traffic,
        is_default,
        is_control,
        shadow_percentile,
        no_wait,
        output,
        new=False,
    )


def _deploy_version(
    name: str,
    version: str | None,
    models: tuple[str, ...],
    ic: str | None,
    dc: str | None,
    traffic: int | None,
    is_default: bool | None,
    is_control: bool | None,
    shadow: int | None,
    no_wait: bool,
    output: str,
    new: bool,
) -> None:
    from modelport.sdk.model import Model

    endpoint = _endpoint(name)
    config = _deployment_config(dc) if dc else None
    named = version or (config.given().get("version_name") if config else None)
    if new and named in endpoint.versions:
        raise InvalidInputError(
            f"version {named!r} already exists in endpoint {name}",
            hint="change it with modelport endpoint version update",
        )
    if not new and named not in endpoint.versions:
        known = ", ".join(endpoint.versions)
        raise InvalidInputError(f"no version {named!r} in endpoint {name} (it has {known})")
    endpoint.deploy_version(
        named,
        [Model(endpoint.workspace, id=m) for m in models] or None,
        _inference_config(ic, None, None) if ic else None,
        config,
        traffic,
        is_default,
        is_control,
        shadow,
    )
    if not no_wait:
        _wait(endpoint)
    emit(endpoint.serialize(), output, _versions_table)


@version_group.command("delete")
@name_option
@version_option
@output_option
def delete_version(name: str, version: str, output: str) -> None:
    """Take a version out of the split at once; its replicas drain, then go."""
    endpoint = _endpoint(name)
    endpoint.delete_version(version)
    emit(endpoint.serialize(), output, _versions_table)
