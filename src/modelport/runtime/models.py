"""Where a replica's models lie (contract section 3) and ``Model.get_model_path``.

Models are laid out as ``$AML_APP_ROOT/azureml-models/<name>/<version>/<basename>``;
``AZUREML_MODEL_DIR`` points at ``.../<name>/<version>`` when the service has one
model and at ``.../azureml-models`` when it has several.
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = "azureml-models"


class ModelNotFoundError(Exception):
    pass


def app_root() -> Path:
    return Path(os.environ.get("AML_APP_ROOT", "/var/azureml-app"))


def get_model_path(model_name: str, version: int | None = None) -> str:
    """The file or folder of a model deployed with this replica (v1 rules)."""
    if version is not None and not isinstance(version, int):
        raise ModelNotFoundError(f"version must be an int, got {version!r}")
    base = app_root() / MODELS_DIR / model_name
    if base.is_dir():
        versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
        chosen = version if version is not None else (versions[-1] if versions else None)
        folder = base / str(chosen)
        if chosen is not None and folder.is_dir():
            entries = list(folder.iterdir())
            if len(entries) != 1:
                raise ModelNotFoundError(
                    f"Dir {folder} can contain only 1 file or folder, found {len(entries)}"
                )
            return str(entries[0])
    local = Path.cwd() / model_name
    if local.exists():
        return str(local)
    raise ModelNotFoundError(
        f"model {model_name}"
        + (f":{version}" if version is not None else "")
        + " is not deployed with this replica"
    )


class Model:
    """The replica-side ``modelport.Model``: only ``get_model_path`` works here."""

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: object = None
    ) -> str:
        return get_model_path(model_name, version)
