"""Model data collection: what collecting costs throughput, in one run.

    python benchmarks/model_data.py [--seconds 8] [--connections 8] [--rounds 3]

Services of one replica each (``replica_max_concurrent_requests`` 8) on one server:
- ``plain``: a no-op ``run()``; the baseline of the capture rows;
- ``capture-100``/``capture-10``: the same, with the router capturing 100 % / 10 % of
  requests and responses (``capture_sample_rate``);
- ``collector-off``: a ``run()`` that calls ``ModelDataCollector.collect`` for inputs
  and predictions with ``collect_model_data`` off (v1: the calls do nothing); the
  baseline of the next row;
- ``collector-on``: the same script with ``collect_model_data=True``.
Rounds rotate the order; each figure is compared with its baseline of the same round
(throughput here drifts by tens of percent over a minute).  Needs wrk.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
from datetime import date

from _common import scripts_folder, start_server, wrk, wrk_arguments

from modelport import AksWebservice, InferenceConfig, Model, Workspace

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""
COLLECTING = """
    import json
    from azureml.monitoring import ModelDataCollector

    def init():
        global inputs, predictions
        features = ["a", "b", "c", "d"]
        inputs = ModelDataCollector("noop", designation="inputs", feature_names=features)
        predictions = ModelDataCollector("noop", designation="predictions", feature_names=["y"])

    def run(raw_data):
        rows = json.loads(raw_data)["data"]
        correlations = inputs.collect(rows[0])
        predictions.collect(predictions.add_correlations([0], correlations))
        return [0]
"""
BASELINE = {"capture-100": "plain", "capture-10": "plain", "collector-on": "collector-off"}


def main() -> None:
    args = wrk_arguments(seconds=8)
    connections = int(args.connections)
    work = scripts_folder({"noop": NOOP, "collecting": COLLECTING})
    (work / "model.txt").write_text("none")
    server, config = start_server(work / "home")
    results: dict[str, list[float]] = {}
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, work / "model.txt", "noop")
            noop = InferenceConfig(entry_script="score.py", source_directory=work / "noop")
            collecting = InferenceConfig(
                entry_script="score.py", source_directory=work / "collecting"
            )
            common = {
                "num_replicas": 1,
                "autoscale_enabled": False,
                "replica_max_concurrent_requests": 8,
            }
            plan = {
                "plain": (noop, {}),
                "capture-100": (noop, {"capture_sample_rate": 1.0}),
                "capture-10": (noop, {"capture_sample_rate": 0.1}),
                "collector-off": (collecting, {"collect_model_data": False}),
                "collector-on": (collecting, {"collect_model_data": True}),
            }
            services = {}
            for name, (ic, extra) in plan.items():
                config_ = AksWebservice.deploy_configuration(**common, **extra)
                services[name] = Model.deploy(ws, name, [model], ic, config_)
            targets = {}
            for name, service in services.items():
                service.wait_for_deployment()
                targets[name] = (service.scoring_uri, service.get_keys()[0])
            names = list(plan)
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                got = {}
                for name in order:
                    url, key = targets[name]
                    got[name] = wrk(
                        url,
                        connections,
                        args.seconds,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    results.setdefault(f"{name} req/s", []).append(got[name]["rps"])
                    results.setdefault(f"{name} errors", []).append(got[name]["errors"])
                for name, base in BASELINE.items():
                    results.setdefault(name, []).append(got[name]["rps"] / got[base]["rps"])
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"## Model data collection and capture ({date.today()}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, wrk -t1 "
        f"-c{connections}, {args.seconds} s after 2 s warm-up, {args.rounds} rounds in "
        "rotating order, 1 replica taking 8 at once)\n"
    )
    print("| service | req/s (median) | errors | vs its baseline (median, range) |")
    print("|---|---|---|---|")
    for name in plan:
        rps = statistics.median(results[f"{name} req/s"])
        errors = sum(results[f"{name} errors"])
        ratio = ""
        if name in BASELINE:
            r = results[name]
            ratio = f"{statistics.median(r):.3f} vs {BASELINE[name]} ({min(r):.3f}-{max(r):.3f})"
        print(f"| {name} | {rps:.0f} | {errors:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
