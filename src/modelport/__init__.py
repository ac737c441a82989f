"""modelport: deploy registered models as autoscaled, authenticated web services.

The SDK names mirror Azure ML v1 (``Workspace``, ``Model``, ``Environment``,
``CondaDependencies``, ``InferenceConfig``, ``ResourceConfiguration``,
``LocalWebservice``, ``AksWebservice``, ``AciWebservice``, ``ComputeTarget``,
``AksCompute``, ``ServicePrincipalAuthentication``, ``AksServiceAccessToken``; v1's
exception names are in ``modelport.exceptions``); they are imported
lazily so that the replica runtime and the router, which live in this package
too, do not pull in the SDK's dependencies.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Workspace": "modelport.sdk.workspace",
    "Model": "modelport.sdk.model",
    "Environment": "modelport.sdk.environment",
    "CondaDependencies": "modelport.sdk.conda",
    "InferenceConfig": "modelport.sdk.inference",
    "ResourceConfiguration": "modelport.sdk.resources",
    "LocalWebservice": "modelport.sdk.webservice",
    "AksWebservice": "modelport.sdk.webservice",
    "AksEndpoint": "modelport.sdk.endpoint",
    "AciWebservice": "modelport.sdk.webservice",
    "Webservice": "modelport.sdk.webservice",
    "ComputeTarget": "modelport.sdk.compute",
    "AksCompute": "modelport.sdk.compute",
    "ModelportError": "modelport.errors",
    "ServicePrincipalAuthentication": "modelport.sdk.authentication",
    "AksServiceAccessToken": "modelport.sdk.webservice",
    "batched": "modelport.batching",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Model" and os.environ.get("MODELPORT_REPLICA"):
        # Inside a replica the user environment may lack the SDK's dependencies;
        # entry scripts only need Model.get_model_path there.
        return importlib.import_module("modelport.runtime.models").Model
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
