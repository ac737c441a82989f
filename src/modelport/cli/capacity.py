"""``modelport capacity``: how many replicas a load needs, by the v1 formula."""

from __future__ import annotations

import click

from modelport.autoscale.policy import replicas_for
from modelport.cli.base import console, emit, output_option


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
    type=click.FloatRange(0, 100, min_open=True),
    default=70,
    show_default=True,
    help="Autoscale target in percent as in the config (70), or as a fraction (0.7).",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Requests one replica serves at once.",
)
@output_option
def capacity(
    rps: float, latency_s: float, target_utilization: float, max_concurrent: int, output: str
) -> None:
    """Replicas for a load: ceil(rps x latency / target / max concurrent)."""
    target = target_utilization / 100 if target_utilization > 1 else target_utilization
    concurrent, replicas = replicas_for(rps, latency_s, target, max_concurrent)
    if output == "json":
        data = {
            "rps": rps,
            "latencySeconds": latency_s,
            "targetUtilization": target,
            "maxConcurrentRequestsPerContainer": max_concurrent,
            "concurrentRequests": round(concurrent, 4),
            "replicas": replicas,
        }
        emit(data, output, str)
        return
    console.print(f"concurrent requests = {rps:g} x {latency_s:g} / {target:g} = {concurrent:.2f}")
    console.print(f"replicas = ceil({concurrent:.2f} / {max_concurrent}) = {replicas}")
