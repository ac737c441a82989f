"""The public surface and the import direction between subpackages."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import modelport

SRC = Path(modelport.__file__).parent

# What each part may import (besides itself and the shared base modules).
BASE = {
    "errors",
    "home",
    "process",
    "httpserver",
    "tls",
    "rowsink",
    "rowupload",
    "tracing",
    "oippath",
    "metrics",
    "batching",
    "__init__",
}
ALLOWED = {
    "spec": set(),
    "store": {"spec"},
    "envs": {"spec"},
    "autoscale": {"spec"},
    "compute": {"spec", "store", "envs", "autoscale"},
    "control": {"spec", "store", "envs", "autoscale", "compute"},
    "runtime": set(),
    "router": set(),
    "sdk": {"spec"},
    "cli": {"spec", "sdk", "control", "autoscale", "envs"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "modelport" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_flow_one_way() -> None:
    wrong = []
    for part, allowed in ALLOWED.items():
        for path in (SRC / part).rglob("*.py"):
            for target in _imports(path) - allowed - BASE - {part}:
                wrong.append(f"{path.relative_to(SRC)} imports modelport.{target}")
    assert not wrong, "\n".join(wrong)


def test_base_modules_import_no_part() -> None:
    for name in BASE - {"__init__"}:
        assert _imports(SRC / f"{name}.py") <= BASE, name


def test_public_names_are_pinned() -> None:
    assert sorted(modelport.__all__) == sorted(
        [
            "AciWebservice",
            "AksCompute",
            "AksEndpoint",
            "AksServiceAccessToken",
            "AksWebservice",
            "ComputeTarget",
            "CondaDependencies",
            "Environment",
            "InferenceConfig",
            "LocalWebservice",
            "Model",
            "ModelportError",
            "ResourceConfiguration",
            "ServicePrincipalAuthentication",
            "Webservice",
            "Workspace",
            "__version__",
            "batched",
        ]
    )
    for name in modelport.__all__:
        assert getattr(modelport, name) is not None


def test_every_file_of_the_package_ships_in_the_wheel() -> None:
    """setuptools takes every folder's Python files, and other files (the migrations'
    template, the dashboard's templates and assets) only where ``package-data`` in
    pyproject.toml names them (by name or glob)."""
    pyproject = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]
    shipped = {
        path
        for pkg, patterns in data.items()
        for pattern in patterns
        for path in (SRC.parent / pkg.replace(".", "/")).glob(pattern)
    }
    others = {f for f in SRC.rglob("*") if f.is_file() and f.suffix not in (".py", ".pyc")}
    assert others <= shipped


def test_importing_the_package_does_not_load_the_sdk() -> None:
    code = "import sys, modelport, modelport.errors; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
