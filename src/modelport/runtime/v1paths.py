"""The v1 import paths a ``score.py`` uses, provided inside replicas (contract section 5.1).

v1 scripts import ``azureml.core.model.Model``, ``azureml.contrib.services.aml_request``
and ``.aml_response``, ``azureml_inference_server_http.api.*`` and
``azureml.monitoring.ModelDataCollector``.  Environments leave the v1 packages out
(they do not install on today's Python), so the runtime appends folders of small
stand-ins to ``sys.path`` before it imports the entry script: the folders under
``v1/``, one per top-level package, each only where the environment has no package
of that name, so a real one always wins.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

FOLDER = Path(__file__).with_name("v1")
# top-level package -> (its folder under v1/, the modules it provides)
PACKAGES = {
    "azureml": (
        "sdk",
        "azureml.core.model.Model, azureml.contrib.services.aml_request/aml_response, "
        "azureml.monitoring.ModelDataCollector",
    ),
    "azureml_inference_server_http": (
        "server",
        "azureml_inference_server_http.api.aml_request/aml_response",
    ),
}


def provide() -> tuple[list[str], list[str]]:
    """Append the stand-ins the environment lacks; (provided, left to the environment)."""
    provided, real = [], []
    for package, (folder, _) in PACKAGES.items():
        if importlib.util.find_spec(package) is not None:
            real.append(package)
        else:
            sys.path.append(str(FOLDER / folder))
            provided.append(package)
    return provided, real


def describe(provided: list[str], real: list[str]) -> str:
    """The replica's one log line about it."""
    parts = []
    if provided:
        parts.append("v1 modules provided: " + "; ".join(PACKAGES[p][1] for p in provided))
    if real:
        parts.append("the environment's own " + ", ".join(real) + " used instead")
    return "; ".join(parts)


def unavailable(module: str) -> Callable[[str], NoReturn]:
    """A module ``__getattr__`` naming what a stand-in does not provide."""

    def __getattr__(name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{module}.{name} is not available inside a modelport replica: replicas provide "
            f"only these v1 names: {'; '.join(p[1] for p in PACKAGES.values())}",
            name=module,
        )

    return __getattr__
