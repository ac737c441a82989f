"""What an environment's virtualenv gets: a pure reading of its specification.

Conda dependencies become pip requirements (modelport builds with uv from PyPI).
v1's serving packages (``azureml-defaults`` and its family) are left out: they do
not resolve on today's Python, and the replica runtime replaces them; where the
runtime's equivalent is a real package (``inference-schema``, which
``@input_schema`` scripts import) its current release is installed instead.  Each
package left out gets one line saying what replaces it, for the build log.

:data:`RECIPE_VERSION` names this reading: bump it whenever the same specification
would build a different virtualenv, so no cache serves a build of an older recipe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelport.errors import InvalidInputError
from modelport.spec.environment import EnvironmentSpec

RECIPE_VERSION = 2

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")
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
# conda names whose PyPI package is called differently
_CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pytables": "tables",
}
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")

INFERENCE_SCHEMA = "inference-schema"
_RUNTIME = "the modelport replica runtime"
# v1 serving package → (real package installed in its place or None, what replaces it)
V1_SERVING: dict[str, tuple[str | None, str]] = {
    "azureml-defaults": (
        INFERENCE_SCHEMA,
        f"{_RUNTIME} serves the script (azureml.core.model and azureml.contrib.services "
        "are provided in the replica); a current inference-schema is installed",
    ),
    "azureml-inference-server-http": (
        INFERENCE_SCHEMA,
        f"{_RUNTIME} serves the script (azureml_inference_server_http.api is provided in "
        "the replica); a current inference-schema is installed",
    ),
    "azureml-core": (None, "the replica provides azureml.core.model (Model.get_model_path)"),
    "azureml-contrib-services": (
        None,
        "the replica provides azureml.contrib.services (rawhttp, AMLRequest, AMLResponse)",
    ),
    "azureml-monitoring": (None, "the replica provides azureml.monitoring"),
    "inference-schema": (INFERENCE_SCHEMA, "a current inference-schema is installed"),
    "applicationinsights": (
        None,
        "no replacement (replicas send no App Insights telemetry; their logs are in "
        "`modelport service logs`)",
    ),
}


@dataclass(frozen=True)
class Recipe:
    requirements: tuple[str, ...]
    dropped: tuple[str, ...] = ()  # one line per v1 package left out
    notes: tuple[str, ...] = ()  # what is read differently from conda (renames, channels)
    problems: tuple[str, ...] = ()  # what cannot be installed here at all


@dataclass
class _Draft:
    lines: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    extras: dict[str, set[str]] = field(default_factory=dict)  # replacements to add


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``AzureML_Defaults`` → ``azureml-defaults``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> tuple[str, set[str]] | None:
    """(name, extras) of a requirement line; None for options, paths and URLs."""
    stripped = line.strip()
    if stripped.startswith(("-", ".", "/", "~")) or "://" in stripped.split("@")[0]:
        return None
    match = _NAME.match(stripped)
    if not match:
        return None
    extras = {e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip()}
    return match.group(1), extras


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
    name = _CONDA_TO_PYPI.get(name.lower(), name)
    rest = dep[match.end(1) :].strip().split()[0] if dep[match.end(1) :].strip() else ""
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0]  # "=1.26=py39h1234_0": drop the build string
        return (
            f"{name}=={version}"
            if "*" in version or version.count(".") >= 2
            else f"{name}=={version}.*"
        )
    return f"{name}{rest}"


def recipe(spec: EnvironmentSpec) -> Recipe:
    """The pip requirements for ``spec``, what was left out and why, what cannot build."""
    draft = _Draft()
    conda = spec.python.conda_dependencies or {}
    for dep in conda.get("dependencies") or []:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                _add_pip(draft, line, "pip")
        else:
            _add_conda(draft, str(dep))
    for name, extras in draft.extras.items():
        if not any(_named(line) == name for line in draft.lines):
            draft.lines.append(name + (f"[{','.join(sorted(extras))}]" if extras else ""))
    channels = [str(c) for c in conda.get("channels") or []]
    if channels:
        draft.notes.append(
            f"conda channels {', '.join(channels)} are not used: conda packages are "
            "installed from PyPI under the same (or their PyPI) name"
        )
    return Recipe(
        tuple(draft.lines), tuple(draft.dropped), tuple(draft.notes), tuple(draft.problems)
    )


def requirements(spec: EnvironmentSpec) -> list[str]:
    """pip requirement lines for an environment: its pip section plus conda packages."""
    return list(recipe(spec).requirements)


def _named(line: str) -> str | None:
    found = requirement_name(line)
    return canonical(found[0]) if found else None


def _add_conda(draft: _Draft, dep: str) -> None:
    try:
        line = conda_to_pip(dep)
    except InvalidInputError as exc:
        draft.problems.append(exc.message)
        return
    if line is None:
        return
    original = dep.split("::")[-1].strip()
    found = requirement_name(original)
    if found and canonical(found[0]) in _CONDA_TO_PYPI:
        draft.notes.append(f"conda package {original} is installed as {line} from PyPI")
    _add_pip(draft, line, "conda", shown=dep)


def _add_pip(draft: _Draft, line: str, section: str, shown: str | None = None) -> None:
    text = line.strip()
    if not text:
        return
    if text.split()[0] in _INCLUDES or text.startswith(("-r", "-c")):
        draft.problems.append(
            f"pip entry {text!r} includes another file, which the server cannot read; "
            "list those requirements in the environment instead"
        )
        return
    if _is_local_path(text):
        draft.problems.append(
            f"pip entry {text!r} is a path on the machine that wrote the specification; "
            "the server cannot install it (publish the package or use a URL)"
        )
        return
    found = requirement_name(text)
    rule = V1_SERVING.get(canonical(found[0])) if found else None
    if found is None or rule is None:
        draft.lines.append(text)
        return
    replacement, why = rule
    name, extras = found
    if replacement is not None:
        draft.extras.setdefault(replacement, set()).update(
            extras if canonical(name) == replacement else set()
        )
        if canonical(name) == replacement and text == name + _extras_text(text):
            return  # an unpinned inference-schema is already what we would install
    draft.dropped.append(f"v1 package {shown or text} ({section}) left out: {why}")


def _extras_text(text: str) -> str:
    match = _NAME.match(text)
    return (match.group(2) or "") if match else ""


def _is_local_path(text: str) -> bool:
    target = text[2:].strip() if text.startswith("-e") else text
    target = target.removeprefix("--editable").strip()
    return target.startswith(("./", "../", "/", "~", "file:")) or target in (".", "..")
