"""The ``modelport`` entry point."""

from __future__ import annotations

import click

from modelport import __version__
from modelport.cli.base import ModelportGroup
from modelport.cli.capacity import capacity
from modelport.cli.compute import compute_group
from modelport.cli.dashboard import dashboard_group
from modelport.cli.data import data_group
from modelport.cli.demo import demo
from modelport.cli.endpoints import endpoint_group
from modelport.cli.environments import environment_group
from modelport.cli.metrics import metrics_group
from modelport.cli.models import model_group
from modelport.cli.server import down, up
from modelport.cli.services import deploy, service_group
from modelport.cli.tokens import client_group, token_group
from modelport.cli.validate import validate


@click.group(cls=ModelportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelport")
def cli() -> None:
    """Deploy registered models as autoscaled, authenticated web services."""


cli.add_command(up)
cli.add_command(down)
cli.add_command(demo)
cli.add_command(model_group)
cli.add_command(environment_group)
cli.add_command(service_group)
cli.add_command(endpoint_group)
cli.add_command(compute_group)
cli.add_command(token_group)
cli.add_command(client_group)
cli.add_command(data_group)
cli.add_command(metrics_group)
cli.add_command(dashboard_group)
model_group.add_command(deploy)
cli.add_command(validate)
cli.add_command(capacity)


def main() -> None:
    cli(prog_name="modelport")
