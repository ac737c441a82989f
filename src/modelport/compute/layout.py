"""Laying a deployment out on disk: source files and models as v1 places them.

``services/<name>/<generation>/app`` is the replica's ``AML_APP_ROOT``: the source
directory under its own name, models under ``azureml-models/<name>/<version>/``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import modelport
from modelport.spec.model import ModelFile
from modelport.store.blobs import BlobStore
from modelport.store.models import ModelRecord

MODELS_DIR = "azureml-models"


def services_root(home: Path) -> Path:
    return home / "services"


def service_dir(home: Path, name: str) -> Path:
    return services_root(home) / name


def copy_files(blobs: BlobStore, files: list[ModelFile], target: Path) -> None:
    for f in files:
        path = target / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A copy, not a link: a replica writing to its files must not reach the store.
        shutil.copyfile(blobs.path(f.sha256), path)


def lay_out(
    home: Path,
    name: str,
    generation: int,
    blobs: BlobStore,
    source_basename: str,
    source_files: list[ModelFile],
    models: list[ModelRecord],
) -> Path:
    root = service_dir(home, name) / str(generation) / "app"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    copy_files(blobs, source_files, root / source_basename if source_basename else root)
    for model in models:
        folder = root / MODELS_DIR / model.name / str(model.version)
        folder.mkdir(parents=True)
        copy_files(blobs, list(model.files), folder)
        if model.kind == "folder":
            (folder / model.basename).mkdir(exist_ok=True)
    return root


def model_dir(root: Path, models: list[ModelRecord]) -> str:
    """AZUREML_MODEL_DIR as v1 sets it: the version folder for one model, else all."""
    if len(models) == 1:
        return str(root / MODELS_DIR / models[0].name / str(models[0].version))
    return str(root / MODELS_DIR)


def runtime_copy(home: Path) -> Path:
    """A private copy of this modelport package for replicas' PYTHONPATH.

    User environments get the runtime's code without a pip install that could move
    their pinned packages; the copy is keyed by the package's content.
    """
    package = Path(modelport.__file__).parent
    files = sorted(p for p in package.rglob("*.py"))
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(package)).encode())
        digest.update(p.read_bytes())
    target = home / "runtime" / digest.hexdigest()[:16]
    if not (target / "modelport" / "__init__.py").exists():
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(
            package, tmp / "modelport", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target
