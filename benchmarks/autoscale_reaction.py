"""Autoscale reaction: seconds from a load step to new replicas serving.

    python benchmarks/autoscale_reaction.py [--clients 8]

A score.py taking ~50 ms, autoscale min 1 / max 10 / target 70 % / refresh 1 s; at
t=0 ``--clients`` closed-loop clients start.  Prints the seconds until the first
added replica is in the router's table, and until the count the policy computes
(``ceil(clients / 0.7)`` clamped to 10) is.  Needs no wrk.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import tempfile
import textwrap
import threading
import time
from datetime import date
from pathlib import Path

import httpx
from _common import start_server

from modelport import AksWebservice, InferenceConfig, Model, Webservice, Workspace

SLOW = """
    import time

    def init():
        pass

    def run(raw):
        time.sleep(0.05)
        return "ok"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    (work / "src").mkdir()
    (work / "src" / "score.py").write_text(textwrap.dedent(SLOW))
    (work / "m.txt").write_text("m")
    server, config = start_server(work / "home")
    target = min(10, math.ceil(args.clients / 0.7 - 1e-9))
    stop = threading.Event()
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, work / "m.txt", "slow")
            dc = AksWebservice.deploy_configuration(
                autoscale_enabled=True,
                autoscale_min_replicas=1,
                autoscale_max_replicas=10,
                autoscale_target_utilization=70,
                autoscale_refresh_seconds=1,
                auth_enabled=False,
            )
            ic = InferenceConfig(entry_script="score.py", source_directory=work / "src")
            service = Model.deploy(ws, "slow", [model], ic, dc)
            service.wait_for_deployment()

            def client() -> None:
                with httpx.Client(timeout=30) as c:
                    while not stop.is_set():
                        c.post(service.scoring_uri, content=b"{}")

            started = time.monotonic()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            first = full = None
            while full is None and time.monotonic() - started < 120:
                ready = sum(
                    r["state"] == "Ready" for r in Webservice(ws, "slow").serialize()["replicas"]
                )
                now = time.monotonic() - started
                if first is None and ready > 1:
                    first = now
                if ready >= target:
                    full = now
                time.sleep(0.02)  # polling the replica count, as a client would
            stop.set()
            for t in threads:
                t.join(timeout=30)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"## Autoscale reaction ({date.today()}, {platform.node()}, {os.cpu_count()} cores)\n")
    print(
        f"{args.clients} closed-loop clients, run() ~50 ms, "
        "min 1 / max 10 / target 70 % / refresh 1 s\n"
    )
    print("| step | seconds after the load step |\n|---|---|")
    print(
        f"| first added replica ready | {first:.2f} |"
        if first is not None
        else "| first added replica ready | never |"
    )
    print(
        f"| policy target ({target} replicas) ready | {full:.2f} |"
        if full is not None
        else f"| policy target ({target}) | never |"
    )


if __name__ == "__main__":
    main()
