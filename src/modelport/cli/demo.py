"""``modelport demo``: train, register, deploy and score a scikit-learn model, locally.

It writes v1-style files (``score.py``, ``inferenceconfig.json``,
``deploymentconfig.json``) into a folder the user can read and copy, deploys them
with two replicas behind the router, and prints a ready-to-paste ``curl`` line.
The server it starts keeps running; ``modelport down`` stops it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from modelport.cli.base import console
from modelport.cli.server import port_option, router_port_option, start_detached
from modelport.errors import InvalidInputError
from modelport.home import home_dir

MODEL_NAME = "iris-classifier"
SERVICE_NAME = "iris-demo"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]

SCORE_PY = '''\
"""A v1-style entry script: init() loads the model once, run() scores a request."""

import json

import joblib
import numpy as np

from azureml.core.model import Model  # as in v1: modelport provides it in replicas

model = None
CLASSES = ["setosa", "versicolor", "virginica"]


def init():
    global model
    model = joblib.load(Model.get_model_path("{model}") + "/model.pkl")


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    return [CLASSES[int(i)] for i in model.predict(data)]
'''


def write_files(folder: Path) -> tuple[Path, Path, Path]:
    """Train the model and write the v1 files; returns (model dir, ic file, dc file)."""
    try:
        import joblib
        import numpy
        import sklearn
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise InvalidInputError(
            "the demo trains a scikit-learn model: install modelport with its demo extra",
            hint="pip install -e '.[demo]' (./scripts/demo does)",
        ) from exc
    model_dir = folder / "model"
    source = folder / "source"
    model_dir.mkdir(parents=True, exist_ok=True)
    source.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model_dir / "model.pkl")
    (source / "score.py").write_text(SCORE_PY.replace("{model}", MODEL_NAME))
    pins = [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
        f"joblib=={joblib.__version__}",
    ]
    environment: dict[str, Any] = {
        "name": "iris-demo-env",
        "python": {"condaDependencies": {"dependencies": [{"pip": pins}]}},
    }
    ic = folder / "inferenceconfig.json"
    ic.write_text(
        json.dumps(
            {"entryScript": "score.py", "sourceDirectory": "source", "environment": environment},
            indent=2,
        )
        + "\n"
    )
    dc = folder / "deploymentconfig.json"
    dc.write_text(
        json.dumps(
            {
                "computeType": "aks",
                "numReplicas": 2,
                "autoScaler": {"autoscaleEnabled": False},
                "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1},
            },
            indent=2,
        )
        + "\n"
    )
    return model_dir, ic, dc


def modelport_command() -> str:
    """How to run this modelport from here, as the user can paste it (a venv's path)."""
    script = Path(sys.executable).parent / "modelport"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m modelport"
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    default="modelport-demo",
    show_default=True,
    help="Folder the demo's files are written to.",
)
@port_option
@router_port_option
def demo(folder: str, port: int, router_port: int | None) -> None:
    """Deploy a scikit-learn model with two replicas on this machine and score it."""
    from modelport.sdk.inference import InferenceConfig
    from modelport.sdk.model import Model
    from modelport.sdk.workspace import Workspace
    from modelport.spec.deployment import deployment_config_from_document
    from modelport.spec.document import parse_document

    home = home_dir()
    url = start_detached(home, "127.0.0.1", port, router_port)
    console.print(f"[bold]1.[/bold] modelport server at {url} (workspace {home})")
    model_dir, ic, dc = write_files(Path(folder))
    console.print(f"[bold]2.[/bold] trained a LogisticRegression on iris; v1 files in {folder}/")
    with Workspace.from_config(home) as ws:
        model = Model.register(
            ws, model_dir, MODEL_NAME, tags={"source": "demo"}, model_framework="ScikitLearn"
        )
        console.print(f"[bold]3.[/bold] registered model {model.id}")
        config = deployment_config_from_document(parse_document(dc.read_text(), dc.name), dc.name)
        console.print(f"[bold]4.[/bold] deploying {SERVICE_NAME} with 2 replicas:")
        service = Model.deploy(
            ws, SERVICE_NAME, [model], InferenceConfig.from_file(ic), config, overwrite=True
        )
        service.wait_for_deployment(show_output=True)
        predictions = service.run({"data": ROWS})
        console.print(f"[bold]5.[/bold] scored {ROWS} -> {predictions}")
        key = service.get_keys()[0]
        body = json.dumps({"data": ROWS[:1]})
        console.print("\nScoring URI: " + service.scoring_uri)
        console.print("Primary key: " + key)
        console.print("Try it:\n")
        curl = (
            f"curl -s -X POST {shlex.quote(service.scoring_uri)} "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )
        console.print(curl, soft_wrap=True, markup=False, highlight=False)
        command = modelport_command()
        console.print(
            f"\nThe server keeps running; `{command} down` stops it and its replicas.",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
