"""Laying a deployment out on disk: source files and models as v1 places them.

``services/<name>/<generation>/app`` is the replica's ``AML_APP_ROOT``: the source
directory under its own name, models under ``azureml-models/<name>/<version>/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import modelport
from modelport.spec.model import ModelFile
from modelport.store.blobs import BlobStore
from modelport.store.models import ModelRecord

MODELS_DIR = "azureml-models"


def request_log_dir(home: Path) -> Path:
    """Where each router worker writes its ``requests-<n>.jsonl`` (``router/requestlog.py``),
    and the control plane the lines of a cluster's routers."""
    return home / "logs"


def request_log_on(environ: Mapping[str, str] = os.environ) -> bool:
    """The routers' request log, on unless ``MODELPORT_REQUEST_LOG=off``."""
    return environ.get("MODELPORT_REQUEST_LOG", "on").lower() != "off"


def services_root(home: Path) -> Path:
    return home / "services"


def service_dir(home: Path, name: str) -> Path:
    return services_root(home) / name


def model_data_root(home: Path) -> Path:
    """v1's ``modeldata/<workspace>``; a local workspace is ``default``."""
    return home / "modeldata" / "default"


def model_data_dir(home: Path, name: str) -> Path:
    """Where a service's collected model data lies, made for this user alone."""
    folder = model_data_root(home) / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def copy_files(blobs: BlobStore, files: list[ModelFile], target: Path) -> None:
    for f in files:
        path = target / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A copy, not a link: a replica writing to its files must not reach the store.
        shutil.copyfile(blobs.path(f.sha256), path)


def placement(
    source_basename: str, source_files: list[ModelFile], models: list[ModelRecord]
) -> tuple[list[ModelFile], list[str]]:
    """Where a generation's files go under its app root (each with its content), and
    the folders that exist even when empty: one answer for every compute target."""
    files = [_moved(f, source_basename) for f in source_files]
    folders: list[str] = []
    for model in models:
        folder = f"{MODELS_DIR}/{model.name}/{model.version}"
        folders.append(folder)
        files += [_moved(f, folder) for f in model.files]
        if model.kind == "folder":
            folders.append(f"{folder}/{model.basename}")
    return files, folders


def _moved(f: ModelFile, folder: str) -> ModelFile:
    return f.model_copy(update={"path": f"{folder}/{f.path}"}) if folder else f


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
    files, folders = placement(source_basename, source_files, models)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    copy_files(blobs, files, root)
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
    if (target / "modelport" / "__init__.py").exists():
        return target
    # Each caller copies into a folder of its own and renames it into place: services
    # prepared at once (an endpoint's versions) never see each other's half copy.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(
            package, tmp / "modelport", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        try:
            tmp.rename(target)
        except OSError:  # another caller's copy is in place already
            if not (target / "modelport" / "__init__.py").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
