"""Environments → virtualenvs, built with uv and cached by content hash and recipe.

Lookup order (DESIGN.md, "Environment cache"): the workspace cache
(``$MODELPORT_HOME/envs/<key>``), then the machine-wide cache
(``$XDG_CACHE_HOME/modelport/envs/<key>``), else build into the machine cache and
link it from the workspace.  The key is the environment's content hash combined
with the recipe (how a specification is read, and the runtime's own packages), so
a build made by an older modelport is never served.  A build holds a file lock on
its key, so two deployments (or two servers) needing the same environment build it
once; a finished build is marked by a file written last, so a half build is never
used.  What will not build here is refused before any work (:func:`build_problems`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from modelport.envs import pythons
from modelport.envs.recipe import RECIPE_VERSION, recipe
from modelport.envs.recipe import conda_to_pip as conda_to_pip  # re-exported
from modelport.envs.recipe import requirements as requirements  # re-exported
from modelport.errors import EnvironmentBuildError, InvalidInputError
from modelport.home import open_private
from modelport.spec.environment import EnvironmentSpec

READY = ".modelport-ready"
RUNTIME_PACKAGES = ("httptools>=0.6", "uvloop>=0.19", "werkzeug>=2.0")

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


def build_key(spec: EnvironmentSpec) -> str:
    """Cache key: the content hash (the registry's identity) plus the recipe."""
    recipe_id = json.dumps([RECIPE_VERSION, list(RUNTIME_PACKAGES), spec.content_hash()])
    return hashlib.sha256(recipe_id.encode()).hexdigest()


def build_problems(spec: EnvironmentSpec) -> list[str]:
    """Everything about ``spec`` that will not build on this machine, one line each.

    Cheap unless the Python pin is not the server's own: then uv is asked which
    interpreters exist (a few seconds at most, cached for a minute).
    """
    out = list(recipe(spec).problems)
    if spec.python.user_managed_dependencies:
        if _user_interpreter(spec) is None:
            out.append(
                f"environment {spec.name!r} is user-managed with interpreter "
                f"{spec.python.interpreter_path!r}, which is not on this machine"
            )
    else:
        problem = _pin_problem(spec)
        if problem:
            out.append(problem)
    if spec.python.base_conda_environment:
        out.append(
            f"python.baseCondaEnvironment {spec.python.base_conda_environment!r}: modelport "
            "does not clone conda environments; list its packages in the specification"
        )
    if spec.r is not None:
        out.append("the environment's R section: modelport runs Python environments only")
    if spec.spark.get("packages") or spec.spark.get("repositories"):
        out.append("the environment's Spark packages: modelport does not run Spark")
    return out


def _pin_problem(spec: EnvironmentSpec) -> str | None:
    try:
        constraint = _constraint(spec)
    except EnvironmentBuildError as exc:
        return exc.message
    if pythons.choose(constraint, []) is not None:  # the server's own fits: no lookup
        return None
    assert constraint is not None
    found = pythons.installed()
    if pythons.choose(constraint, found) is not None:
        return None
    return pythons.pin_problem(spec.name, constraint, found)


def _constraint(spec: EnvironmentSpec) -> pythons.Constraint | None:
    entry = spec.python_entry
    try:
        return None if entry is None else pythons.python_constraint(entry)
    except InvalidInputError as exc:  # an unreadable pin
        raise EnvironmentBuildError(exc.message) from exc


def _user_interpreter(spec: EnvironmentSpec) -> str | None:
    path = spec.python.interpreter_path
    if os.path.isabs(path):
        return path if os.access(path, os.X_OK) else None
    return shutil.which(path)


class EnvironmentBuilder:
    def __init__(self, workspace_cache: Path, machine_cache: Path | None = None) -> None:
        self.workspace_cache = workspace_cache
        self.machine_cache = machine_cache or machine_cache_dir()

    def ensure(self, spec: EnvironmentSpec | None, progress: Progress) -> BuiltEnvironment:
        """A ready environment for ``spec`` (blocking: call it from a worker thread)."""
        if spec is None:
            progress("no environment given: replicas use the server's interpreter")
            return BuiltEnvironment(sys.executable, None, "server", {})
        digest, key = spec.content_hash(), build_key(spec)
        variables = {**spec.conda_variables(), **spec.environment_variables}
        linked = self.workspace_cache / key
        label = f"environment {spec.name} ({digest[:12]}, build {key[:12]})"
        if (linked / READY).exists():
            progress(f"{label}: workspace cache hit")
            return BuiltEnvironment(_python(linked), digest, "workspace cache", variables)
        problems = build_problems(spec)
        if problems:
            raise EnvironmentBuildError(
                f"environment {spec.name!r} cannot be built here:\n"
                + "\n".join(f"- {p}" for p in problems)
            )
        target = self.machine_cache / key
        self.machine_cache.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.machine_cache / f"{key}.lock"):
            if (target / READY).exists():
                progress(f"{label}: machine cache hit")
                source = "machine cache"
            else:
                progress(f"{label}: building with uv")
                _Build(spec, target, progress).run()
                source = "built"
        self._link(linked, target)
        return BuiltEnvironment(_python(target), digest, source, variables)

    def _link(self, linked: Path, target: Path) -> None:
        """Point the workspace entry at the build; atomic, so racing callers both win."""
        self.workspace_cache.mkdir(parents=True, exist_ok=True)
        if linked.is_symlink() and Path(os.readlink(linked)) == target:
            return
        tmp = linked.with_name(f".{linked.name}.{uuid.uuid4().hex}")
        tmp.symlink_to(target)
        os.replace(tmp, linked)


class _Build:
    """One build into ``target``; every step and uv's output go to ``<key>.build.log``."""

    log: IO[str]  # open while run() runs

    def __init__(self, spec: EnvironmentSpec, target: Path, progress: Progress) -> None:
        self.spec = spec
        self.target = target
        self.progress = progress
        self.log_path = target.with_name(target.name + ".build.log")
        self.recipe = recipe(spec)

    def run(self) -> None:
        shutil.rmtree(self.target, ignore_errors=True)  # a build that died halfway
        with open_private(self.log_path, "w") as log:
            self.log = log
            try:
                self._steps()
            except EnvironmentBuildError as exc:
                shutil.rmtree(self.target, ignore_errors=True)
                raise EnvironmentBuildError(
                    _explain(exc.message, self.spec), hint=f"full log: {self.log_path}"
                ) from exc
        (self.target / READY).write_text(self.spec.content_hash() + "\n")

    def say(self, line: str) -> None:
        print(line, file=self.log, flush=True)
        self.progress(line)

    def _steps(self) -> None:
        spec, python = self.spec, _python(self.target)
        user_managed = spec.python.user_managed_dependencies
        base = _user_interpreter(spec) if user_managed else self._interpreter()
        venv = ["venv", "--quiet", "--python", str(base), str(self.target)]
        if user_managed:
            venv.insert(1, "--system-site-packages")
            self.say(
                f"user-managed dependencies: replicas use {base} with its own packages; "
                "the conda specification is not installed (as in v1)"
            )
        self._uv(venv)
        if not user_managed:
            for line in (*self.recipe.dropped, *self.recipe.notes):
                self.say(line)
            if self.recipe.requirements:
                reqs = self.target / "modelport-requirements.txt"
                reqs.write_text("\n".join(self.recipe.requirements) + "\n")
                self._uv(["pip", "install", "--python", python, "-r", str(reqs)])
        # The replica runtime's own needs, never moving what the user pinned.
        constraints = self.target / "modelport-constraints.txt"
        constraints.write_text(self._uv(["pip", "freeze", "--python", python]))
        self._uv(["pip", "install", "--python", python, "-c", str(constraints), *RUNTIME_PACKAGES])

    def _interpreter(self) -> str:
        constraint = _constraint(self.spec)
        chosen = pythons.choose(constraint, [])
        if chosen is None:  # not the server's own: build_problems found one with uv
            assert constraint is not None
            found = pythons.installed()
            chosen = pythons.choose(constraint, found)
            if chosen is None:
                raise EnvironmentBuildError(pythons.pin_problem(self.spec.name, constraint, found))
            self.say(f"python {chosen.label()} for the pin {self.spec.python_entry}")
        return chosen.path

    def _uv(self, args: list[str]) -> str:
        """Run uv, passing each stderr line to the log and to progress as it comes."""
        from uv import find_uv_bin

        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": "", "NO_COLOR": "1"}
        print(f"$ uv {' '.join(args)}", file=self.log, flush=True)
        proc = subprocess.Popen(
            [find_uv_bin(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(_read(proc.stdout)), daemon=True)
        reader.start()
        errors: list[str] = []
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                errors.append(line)
                self.log.write(line)
                self.log.flush()
                if line.strip():
                    self.progress(f"  {line.strip()}")
        except BaseException:
            proc.kill()  # a failing progress callback must not leave uv running
            raise
        finally:
            code = proc.wait()
            reader.join()
        stdout = "".join(out)
        self.log.write(stdout)
        if code != 0:
            output = (stdout + "".join(errors)).strip()
            raise EnvironmentBuildError(output or f"uv {args[0]} failed ({code})")
        return stdout


def _read(stream: IO[str] | None) -> str:
    return stream.read() if stream is not None else ""


def _python(venv: Path) -> str:
    return str(venv / "bin" / "python")


def _explain(output: str, spec: EnvironmentSpec) -> str:
    """Name the requirement pip could not find, and whether it came from conda."""
    conda_names = set()
    for dep in (spec.python.conda_dependencies or {}).get("dependencies") or []:
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", str(dep).split("::")[-1])
        if isinstance(dep, str) and match:
            conda_names.add(match.group(1).lower())
    missing = re.findall(r"([A-Za-z0-9._-]+) was not found in the package registry", output)
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
