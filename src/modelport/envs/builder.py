"""Environments → virtualenvs, built with uv and cached by content hash.

Lookup order (DESIGN.md, "Environment cache"): the workspace cache
(``$MODELPORT_HOME/envs/<hash>``), then the machine-wide cache
(``$XDG_CACHE_HOME/modelport/envs/<hash>``), else build into the machine cache and
link it from the workspace.  A build holds a file lock on its hash, so two
deployments (or two servers) needing the same environment build it once; a
finished build is marked by a file written last, so a half build is never used.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelport.errors import EnvironmentBuildError, InvalidInputError
from modelport.spec.environment import EnvironmentSpec

READY = ".modelport-ready"
RUNTIME_PACKAGES = ("httptools>=0.6", "uvloop>=0.19", "werkzeug>=2.0")
_CONDA_SKIP = {"python", "pip"}
_CONDA_ONLY = {
    "cudatoolkit",
    "mkl",
    "libgcc",
    "libgcc-ng",
    "libstdcxx-ng",
    "_libgcc_mutex",
    "openssl",
    "ca-certificates",
    "certifi-conda",
    "nomkl",
    "blas",
}
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltEnvironment:
    python: str  # interpreter the replicas run
    content_hash: str | None  # None: the server's own interpreter
    source: str  # "server", "workspace cache", "machine cache" or "built"
    variables: dict[str, str]


def machine_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelport" / "envs"


def requirements(spec: EnvironmentSpec) -> list[str]:
    """pip requirement lines for an environment: its pip section plus conda packages."""
    conda = spec.python.conda_dependencies or {}
    lines: list[str] = []
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            lines.extend(dep.get("pip", []))
            continue
        line = conda_to_pip(str(dep))
        if line is not None:
            lines.append(line)
    return lines


def conda_to_pip(dep: str) -> str | None:
    """``numpy=1.26`` → ``numpy==1.26.*``; python/pip are handled elsewhere."""
    dep = dep.split("::")[-1].strip()
    match = _NAME.match(dep)
    if not match:
        raise InvalidInputError(f"cannot read the conda dependency {dep!r}")
    name = match.group(1)
    if name.lower() in _CONDA_SKIP:
        return None
    if name.lower() in _CONDA_ONLY:
        raise InvalidInputError(
            f"conda package {name!r} has no same-named package on PyPI; modelport builds "
            "environments with pip packages only, so remove it or use its PyPI equivalent"
        )
    rest = dep[len(name) :].strip().split()[0] if dep[len(name) :].strip() else ""
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:]
        return (
            f"{name}=={version}"
            if "*" in version or version.count(".") >= 2
            else f"{name}=={version}.*"
        )
    return f"{name}{rest}"


class EnvironmentBuilder:
    def __init__(self, workspace_cache: Path, machine_cache: Path | None = None) -> None:
        self.workspace_cache = workspace_cache
        self.machine_cache = machine_cache or machine_cache_dir()

    def ensure(self, spec: EnvironmentSpec | None, progress: Progress) -> BuiltEnvironment:
        """A ready environment for ``spec`` (blocking: call it from a worker thread)."""
        if spec is None:
            progress("no environment given: replicas use the server's interpreter")
            return BuiltEnvironment(sys.executable, None, "server", {})
        digest = spec.content_hash()
        variables = dict(spec.environment_variables)
        linked = self.workspace_cache / digest
        if (linked / READY).exists():
            progress(f"environment {spec.name} ({digest[:12]}): workspace cache hit")
            return BuiltEnvironment(_python(linked), digest, "workspace cache", variables)
        target = self.machine_cache / digest
        self.machine_cache.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.machine_cache / f"{digest}.lock"):
            if (target / READY).exists():
                progress(f"environment {spec.name} ({digest[:12]}): machine cache hit")
                source = "machine cache"
            else:
                progress(f"environment {spec.name} ({digest[:12]}): building with uv")
                self._build(spec, target, progress)
                source = "built"
        self._link(linked, target)
        return BuiltEnvironment(_python(target), digest, source, variables)

    def _build(self, spec: EnvironmentSpec, target: Path, progress: Progress) -> None:
        lines = requirements(spec)
        shutil.rmtree(target, ignore_errors=True)  # a build that died halfway
        log_path = target.with_name(target.name + ".build.log")
        python = spec.python_version or sys.executable
        try:
            with log_path.open("w") as log:
                _uv(["venv", "--quiet", "--python", python, str(target)], log, progress)
                if lines:
                    reqs = target / "modelport-requirements.txt"
                    reqs.write_text("\n".join(lines) + "\n")
                    _uv(
                        ["pip", "install", "--python", _python(target), "-r", str(reqs)],
                        log,
                        progress,
                    )
                # The replica runtime's own needs, never moving what the user pinned.
                frozen = _uv(["pip", "freeze", "--python", _python(target)], log, progress)
                constraints = target / "modelport-constraints.txt"
                constraints.write_text(frozen)
                _uv(
                    [
                        "pip",
                        "install",
                        "--python",
                        _python(target),
                        "-c",
                        str(constraints),
                        *RUNTIME_PACKAGES,
                    ],
                    log,
                    progress,
                )
        except EnvironmentBuildError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise EnvironmentBuildError(
                _explain(exc.message, lines, spec), hint=f"full log: {log_path}"
            ) from exc
        (target / READY).write_text(spec.content_hash() + "\n")

    def _link(self, linked: Path, target: Path) -> None:
        """Point the workspace entry at the build; atomic, so racing callers both win."""
        self.workspace_cache.mkdir(parents=True, exist_ok=True)
        if linked.is_symlink() and Path(os.readlink(linked)) == target:
            return
        tmp = linked.with_name(f".{linked.name}.{uuid.uuid4().hex}")
        tmp.symlink_to(target)
        os.replace(tmp, linked)


def _python(venv: Path) -> str:
    return str(venv / "bin" / "python")


def _uv(args: list[str], log: object, progress: Progress) -> str:
    from uv import find_uv_bin

    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}
    done = subprocess.run([find_uv_bin(), *args], capture_output=True, text=True, env=env)
    output = (done.stdout or "") + (done.stderr or "")
    print(f"$ uv {' '.join(args)}\n{output}", file=log)  # type: ignore[call-overload]
    for line in (done.stderr or "").splitlines():
        if line.strip():
            progress(f"  {line.strip()}")
    if done.returncode != 0:
        raise EnvironmentBuildError(output.strip() or f"uv {args[0]} failed ({done.returncode})")
    return done.stdout


def _explain(output: str, lines: list[str], spec: EnvironmentSpec) -> str:
    """Name the requirement pip could not find, and whether it came from conda."""
    conda_names = {
        _NAME.match(str(d).split("::")[-1]).group(1).lower()  # type: ignore[union-attr]
        for d in (spec.python.conda_dependencies or {}).get("dependencies") or []
        if isinstance(d, str) and _NAME.match(str(d).split("::")[-1])
    }
    missing = re.findall(
        r"(?:Because |^\s*╰─▶ Because )?([A-Za-z0-9._-]+) was not found in the package registry",
        output,
        re.M,
    )
    for name in missing:
        if name.lower() in conda_names:
            return (
                f"environment build failed: conda package {name!r} has no same-named "
                f"package on PyPI\n{output}"
            )
    return f"environment build failed:\n{output}"


class _file_lock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
