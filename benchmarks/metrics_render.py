"""What a scrape costs: the router's counters written out, by hand (a baseline commit's
``router/stats.py``) and by prometheus_client (this tree's), in the same run.

    python benchmarks/metrics_render.py [--services 1,10,100] [--baseline 17c8bf3]

A request's cost at the router is untouched by the change (the hot path records into
the same plain ints, ``LaneStats.record``); its per-call time is printed too, for
scale, with the replica's new per-request count (``ReplicaCounters.observe_run``).  The
baseline's module is loaded from ``git show`` so both render the same counters.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import timeit
from datetime import date
from pathlib import Path
from typing import Any

from _common import ROOT

from modelport.router.stats import render
from modelport.router.table import RouteTable, build_table
from modelport.runtime.counters import ReplicaCounters


def baseline_module(commit: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{commit}:src/modelport/router/stats.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="modelport-bench-")) / "stats_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stats_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stats_baseline"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def table(services: int) -> RouteTable:
    """``services`` routes, half of them an endpoint's versions, with counters filled."""
    names = [f"svc{i}" if i % 2 else f"ep{i // 4}.v{i % 4}" for i in range(services)]
    doc = {
        "revision": 1,
        "services": {n: {"replicas": [["127.0.0.1", 9000 + i, 1]]} for i, n in enumerate(names)},
    }
    built = build_table(doc, RouteTable(0, {}))
    for route in built.routes.values():
        for k in range(200):
            route.lane.stats.record(200 + (k % 4) * 100, k / 1000)
            route.lane.stats.queue_wait.observe(k / 5000)
    return built


def with_baseline_stats(built: RouteTable, old: Any) -> RouteTable:
    """The same counters in the baseline's objects (its histograms render themselves)."""
    for route in built.routes.values():
        new, stats = route.lane.stats, old.LaneStats()
        stats.requests = dict(new.requests)
        stats.latency.counts, stats.latency.total = list(new.latency.counts), new.latency.total
        stats.queue_wait.counts = list(new.queue_wait.counts)
        stats.queue_wait.total = new.queue_wait.total
        route.lane.stats = stats
    return built


def per_call_us(fn: Any) -> float:
    """The best of 5 rounds of about 0.2 s each (the least disturbed by other load)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", default="1,10,100")
    parser.add_argument("--baseline", default="17c8bf3")
    args = parser.parse_args()
    old = baseline_module(args.baseline)
    print(
        f"## Scrape rendering ({date.today()}, {platform.node() or 'vm'}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, baseline {args.baseline})\n"
    )
    print("| services | hand-written us | prometheus_client us | ratio | bytes before / after |")
    print("|---|---|---|---|---|")
    for count in [int(n) for n in args.services.split(",")]:
        new_table = table(count)
        after = per_call_us(lambda t=new_table: render(t))
        old_table = with_baseline_stats(table(count), old)
        before = per_call_us(lambda t=old_table: old.render(t))
        size = f"{len(old.render(old_table))} / {len(render(new_table))}"
        print(f"| {count} | {before:.0f} | {after:.0f} | {after / before:.2f}x | {size} |")
    stats = table(1).routes["ep0.v0"].lane.stats
    record = per_call_us(lambda: stats.record(200, 0.003))
    print(f"\nLaneStats.record (the hot path's part, unchanged): {record:.2f} us per call")
    replica = ReplicaCounters()
    run = per_call_us(lambda: replica.observe_run(0.003))
    print(f"ReplicaCounters.observe_run (new, once per scored request): {run:.2f} us per call")


if __name__ == "__main__":
    sys.exit(main())
