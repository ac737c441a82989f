"""``modelport compute ...``: attach, list, show and detach Kubernetes clusters."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from modelport.cli.base import console, emit, output_option
from modelport.spec.compute import CLUSTER_PURPOSES, FAST_PROD

HEADERS = ("name", "type", "state", "purpose", "server", "version", "context", "namespace")


def _fields(target: dict[str, Any]) -> list[tuple[str, str]]:
    """What a table shows of a target (its serialize() shape, v1's)."""
    props = target["properties"]
    cluster = props["properties"]
    values = (
        target["name"],
        props["computeType"],
        props["provisioningState"],
        cluster["clusterPurpose"],
        cluster["server"],
        cluster["serverVersion"],
        cluster["context"],
        cluster["namespace"],
    )
    return [(h, "" if v is None else str(v)) for h, v in zip(HEADERS, values, strict=True)]


@click.group("compute")
def compute_group() -> None:
    """Attach, list, show and detach Kubernetes clusters (compute targets)."""


def _workspace() -> Any:
    from modelport.sdk.workspace import Workspace

    return Workspace.from_config()


def _targets_table(items: list[dict[str, Any]]) -> Table:
    table = Table(*HEADERS)
    for target in items:
        table.add_row(*(value for _, value in _fields(target)))
    return table


def _target_table(target: dict[str, Any]) -> Table:
    table = Table("field", "value", show_header=False)
    for name, value in _fields(target):
        table.add_row(name, value)
    table.add_row("attached", target["properties"]["createdOn"])
    if target["properties"]["provisioningErrors"]:
        table.add_row("errors", target["properties"]["provisioningErrors"])
    return table


@compute_group.command("attach")
@click.argument("name")
@click.option(
    "--kubeconfig",
    required=True,
    type=click.Path(dir_okay=False),
    help="The kubeconfig file; what it names (certificates, token files) is sent inline.",
)
@click.option("--context", help="Its context to use (default: its current context).")
@click.option("--namespace", help="Where services go (default: the context's, else default).")
@click.option(
    "--cluster-purpose",
    type=click.Choice(CLUSTER_PURPOSES, case_sensitive=False),
    default=FAST_PROD,
    show_default=True,
    help="v1's cluster purpose.",
)
@output_option
def attach(
    name: str,
    kubeconfig: str,
    context: str | None,
    namespace: str | None,
    cluster_purpose: str,
    output: str,
) -> None:
    """Attach a cluster: checks that its API server answers and that the credentials
    may do what modelport does in the namespace."""
    from modelport.sdk.compute import AksCompute, ComputeTarget

    config = AksCompute.attach_configuration(
        cluster_purpose=cluster_purpose, kubeconfig=kubeconfig, context=context, namespace=namespace
    )
    with console.status(f"checking the cluster of context {context or '(current)'} ..."):
        target = ComputeTarget.attach(_workspace(), name, config)
    if output == "json":
        emit(target.serialize(), output, _target_table)
        return
    click.echo(  # one line, never folded
        f"Attached compute target {target.name}: {target.server} "
        f"(Kubernetes {target.server_version}), context {target.context}, "
        f"namespace {target.namespace}, {target.cluster_purpose}"
    )


@compute_group.command("list")
@output_option
def list_targets(output: str) -> None:
    """List the attached compute targets."""
    from modelport.sdk.compute import ComputeTarget

    emit([t.serialize() for t in ComputeTarget.list(_workspace())], output, _targets_table)


@compute_group.command("show")
@click.argument("name")
@output_option
def show(name: str, output: str) -> None:
    """Show one compute target (never its credentials)."""
    from modelport.sdk.compute import ComputeTarget

    emit(ComputeTarget(_workspace(), name).serialize(), output, _target_table)


@compute_group.command("detach")
@click.argument("name")
def detach(name: str) -> None:
    """Detach a compute target no service uses; the cluster itself is left as it is."""
    from modelport.sdk.compute import ComputeTarget

    ComputeTarget(_workspace(), name).detach()
    console.print(f"Detached compute target {name}")


@compute_group.command("install")
@click.argument("name")
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the manifests (YAML, with the router's token) for kubectl apply -f instead.",
)
@click.option(
    "--tls-secret",
    help="Serve HTTPS with this Secret's tls.crt/tls.key (cert-manager's layout); "
    "'off': plain HTTP. Default: as installed.",
)
@output_option
def install(name: str, print_only: bool, tls_secret: str | None, output: str) -> None:
    """Set up the cluster side: namespace, roles, the router Deployment and Service.

    Safe to run again; the router keeps its token and, without --tls-secret, its TLS.
    """
    from modelport.sdk.compute import ComputeTarget

    target = ComputeTarget(_workspace(), name)
    if print_only:
        import yaml

        click.echo(yaml.safe_dump_all(target.manifests(tls_secret), sort_keys=False), nl=False)
        return
    emit(target.install(tls_secret), output, _installed)


def _installed(answer: dict[str, Any]) -> str:
    lines = [f"applied {applied}" for applied in answer["applied"]]
    return "\n".join([*lines, f"router: {answer['routerUri']}"])
