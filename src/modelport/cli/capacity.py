"""``modelport capacity``: how many replicas a load needs, by the v1 formula."""

from __future__ import annotations

import click

from modelport.autoscale.policy import replicas_for
from modelport.cli.base import console


@click.command("capacity")
@click.option(
    "--rps",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Target requests per second.",
)
@click.option(
    "--latency-s",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Seconds one request takes.",
)
@click.option(
    "--target-utilization",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.7,
    show_default=True,
    help="Autoscale target, as a fraction (70 % = 0.7).",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Requests one replica serves at once.",
)
def capacity(rps: float, latency_s: float, target_utilization: float, max_concurrent: int) -> None:
    """Replicas for a load: ceil(rps x latency / target / max concurrent)."""
    concurrent, replicas = replicas_for(rps, latency_s, target_utilization, max_concurrent)
    console.print(
        f"concurrent requests = {rps:g} x {latency_s:g} / {target_utilization:g} = {concurrent:.2f}"
    )
    console.print(f"replicas = ceil({concurrent:.2f} / {max_concurrent}) = {replicas}")
