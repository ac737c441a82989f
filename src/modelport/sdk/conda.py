"""``CondaDependencies``: v1's editor of a conda specification, with v1's methods.

Import it as ``from modelport import CondaDependencies`` (v1:
``from azureml.core.conda_dependencies import CondaDependencies``).  The object *is*
the conda specification (a dict: ``name``, ``dependencies``, ``channels``), so once
assigned to ``env.python.conda_dependencies`` later edits through it are what the
environment builds, as in v1.  What it writes (``serialize_to_string``, ``save``) is
plain conda YAML that ``Environment.from_conda_specification`` reads back.

Two defaults differ from v1 on purpose: the Python pinned by default is the one
this SDK runs on (v1 pinned its own supported version, 3.8.13 in its last releases,
which machines today rarely have), and ``pin_sdk_version`` pins nothing, because
the v1 SDK packages it would pin are replaced by modelport's runtime at build time.
"""

from __future__ import annotations

import builtins
import copy
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from modelport.errors import ConfigError, InvalidInputError
from modelport.sdk.files import read_text
from modelport.spec.document import parse_document
from modelport.spec.environment import check_conda_dependencies

DEFAULT_PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
DEFAULT_SDK_ORIGIN = "https://pypi.python.org/simple"
CONDA_FILE_NAME = "auto_conda_dependencies.yml"
_VALID_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
_PIP, _DEPENDENCIES, _CHANNELS = "pip", "dependencies", "channels"
_NAME_END = re.compile(r"[\[=<>~!;@\s]")
_HEADER = (
    "# Conda environment specification. The dependencies defined in this file will\n"
    "# be installed for the replicas of services deployed with it.\n\n"
)


def _default_document() -> dict[str, Any]:
    return {
        "name": "project_environment",
        _DEPENDENCIES: [f"python={DEFAULT_PYTHON_VERSION}", {_PIP: ["azureml-defaults"]}],
        _CHANNELS: ["anaconda", "conda-forge"],
    }


def _package_name(value: str) -> str:
    """``pandas[pyarrow]>=2`` → ``pandas``; a wheel file or URL → its distribution."""
    if value.endswith(".whl"):
        return value.rsplit("/", 1)[-1].split("-")[0]
    return _NAME_END.split(value.strip(), maxsplit=1)[0]


def _canonical(package: str) -> str:
    return re.sub(r"[-_.]+", "-", _package_name(package)).lower()


def _same_package(a: str, b: str) -> bool:
    return _canonical(a) == _canonical(b)


def _is_python(package: str) -> bool:
    return _package_name(package.split("::")[-1]).lower() == "python"


def _version_of(package: str) -> str | None:
    match = re.search(r"(\d+)\.(\d+)(\.(\d+))?([ab](\d+))?", package)
    return match.group() if match else None


class CondaDependencies(dict[str, Any]):
    """A conda specification with v1's methods; without a file, v1's default content."""

    DEFAULT_NUMBER_OF_CONDA_PACKAGES = 1  # the python pin
    DEFAULT_NUMBER_OF_PIP_PACKAGES = 1  # azureml-defaults

    def __init__(
        self,
        conda_dependencies_file_path: str | os.PathLike[str] | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        if conda_dependencies_file_path is not None:
            path = str(conda_dependencies_file_path)
            doc = parse_document(read_text(path), Path(path).name)
            _check(doc, path)
        elif _underlying_structure is not None:
            doc = copy.deepcopy(dict(_underlying_structure))
        else:
            doc = _default_document()
        super().__init__(doc)

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """v1's ``create``; ``pip_packages`` replaces the default ``azureml-defaults``."""
        cd = CondaDependencies()
        if pip_indexurl:
            cd.set_pip_index_url(f"--index-url {pip_indexurl}")
            cd.set_pip_option(f"--extra-index-url {DEFAULT_SDK_ORIGIN}")
        cd.set_python_version(python_version or DEFAULT_PYTHON_VERSION)
        if pip_packages is not None:
            for package in list(cd.pip_packages):
                cd.remove_pip_package(package)
            for package in pip_packages:
                cd.add_pip_package(package)
        for package in conda_packages or ():
            cd.add_conda_package(package)
        return cd

    @staticmethod
    def merge_requirements(requirements: Iterable[str]) -> builtins.list[str]:
        """Requirements of one package joined into one line: ``a>1``, ``a<3`` → ``a>1,<3``."""
        merged: dict[str, builtins.list[str]] = {}
        for req in requirements:
            name = _package_name(req)
            merged.setdefault(name, []).append(req[len(name) :].strip())
        return [name + ",".join(s for s in specs if s) for name, specs in merged.items()]

    @staticmethod
    def sdk_origin_url() -> str:
        return DEFAULT_SDK_ORIGIN

    # -- reading -----------------------------------------------------------------------
    @property
    def conda_channels(self) -> Iterator[str]:
        return iter(list(self.get(_CHANNELS) or []))

    @property
    def conda_packages(self) -> Iterator[str]:
        return iter([d for d in self._dependencies() if isinstance(d, str)])

    @property
    def pip_packages(self) -> Iterator[str]:
        return iter([p for p in self._pip_list() if not p.startswith("-")])

    @property
    def pip_options(self) -> Iterator[str]:
        return iter([p for p in self._pip_list() if p.startswith("-")])

    def get_python_version(self) -> str | None:
        entry = next((d for d in self.conda_packages if _is_python(d)), None)
        return None if entry is None else _version_of(entry)

    def get_default_number_of_packages(self) -> tuple[int, int]:
        return self.DEFAULT_NUMBER_OF_CONDA_PACKAGES, self.DEFAULT_NUMBER_OF_PIP_PACKAGES

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))

    # -- editing -----------------------------------------------------------------------
    def set_python_version(self, version: str) -> None:
        deps = self._dependencies()
        index = next((i for i, d in enumerate(deps) if isinstance(d, str) and _is_python(d)), None)
        entry = f"python={version}"
        if index is None:
            deps.insert(0, entry)
        else:
            deps[index] = entry

    def add_channel(self, channel: str) -> None:
        channels = self.setdefault(_CHANNELS, [])
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        channels = self.get(_CHANNELS) or []
        if channel in channels:
            channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        if _is_python(conda_package):
            version = _version_of(conda_package)
            if version is None:
                raise InvalidInputError(f"invalid version number in {conda_package!r}")
            self.set_python_version(version)
            return
        deps = self._dependencies()
        if conda_package not in deps:
            deps.append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        if _is_python(conda_package):
            raise InvalidInputError("python must not be removed from conda dependencies")
        deps = self._dependencies()
        if conda_package in deps:
            deps.remove(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add (or replace the entry of the same package, moving it to the end)."""
        if pip_package.startswith("-"):
            raise InvalidInputError(f"Invalid package name {pip_package}")
        self.remove_pip_package(pip_package)
        self._pip_list(create=True).append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        if pip_package.startswith("-"):
            raise InvalidInputError(f"Invalid package name {pip_package}")
        pip = self._pip_list()
        for entry in [p for p in pip if not p.startswith("-") and _same_package(p, pip_package)]:
            pip.remove(entry)

    def set_pip_option(self, pip_option: str) -> None:
        """Add an option line (``--extra-index-url ...``), replacing one of the same flag."""
        if not pip_option.startswith("-"):
            raise InvalidInputError(f"Invalid pip option {pip_option}")
        pip = self._pip_list(create=True)
        flag = pip_option.split()[0]
        for i, entry in enumerate(pip):
            if entry.startswith("-") and entry.split()[0] == flag:
                pip[i] = pip_option
                return
        pip.append(pip_option)

    def remove_pip_option(self, pip_option: str) -> None:
        if not pip_option.startswith("-"):
            raise InvalidInputError(f"Invalid pip option {pip_option}")
        pip = self._pip_list()
        flag = pip_option.split()[0]
        for entry in [p for p in pip if p.startswith("-") and p.split()[0] == flag]:
            pip.remove(entry)

    def set_pip_index_url(self, index_url: str) -> None:
        self.set_pip_option(index_url)

    def set_pip_requirements(self, pip_requirements: Iterable[str]) -> None:
        pip = self._pip_list(create=True)
        pip[:] = list(pip_requirements)

    # -- writing -----------------------------------------------------------------------
    def serialize_to_string(self) -> str:
        body = yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=False)
        return _HEADER + body

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the specification to ``path`` (a file, in an existing folder)."""
        target = Path(path)
        if target.is_dir():
            raise InvalidInputError(
                "Cannot save a conda environment specification file to a directory. Please "
                "specify a fully qualified path along with the file name to save the file."
            )
        if not target.parent.is_dir():
            raise InvalidInputError(
                "Cannot save the conda environment specification file to an invalid path."
            )
        self._validate()
        target.write_text(self.serialize_to_string())
        return str(path)

    def save_to_file(
        self, base_directory: str | os.PathLike[str], conda_file_path: str | None = None
    ) -> str:
        """Deprecated in v1 (use ``save``): write under ``base_directory``, return the
        path relative to it."""
        relative = conda_file_path or f".azureml/{CONDA_FILE_NAME}"
        full = Path(base_directory) / relative
        full.parent.mkdir(parents=True, exist_ok=True)
        self._validate()
        full.write_text(self.serialize_to_string())
        return relative

    # -- internals ---------------------------------------------------------------------
    def _dependencies(self) -> builtins.list[Any]:
        deps = self.get(_DEPENDENCIES)
        if deps is None:
            deps = self[_DEPENDENCIES] = []
        return deps

    def _pip_list(self, create: bool = False) -> builtins.list[str]:
        for dep in self._dependencies():
            if isinstance(dep, dict) and _PIP in dep:
                return dep[_PIP]  # type: ignore[no-any-return]
        if not create:
            return []
        section: dict[str, builtins.list[str]] = {_PIP: []}
        self._dependencies().append(section)
        return section[_PIP]

    def _validate(self) -> None:
        if self.get_python_version() is None and not any(
            _is_python(d) for d in self.conda_packages
        ):
            raise InvalidInputError("Python package is missing.")

    def __repr__(self) -> str:
        return f"CondaDependencies({dict(self)!r})"


def _check(doc: dict[str, Any], where: str) -> None:
    for key in doc:
        if key not in _VALID_KEYS:
            raise ConfigError(
                f"{where}: Environment error: unknown {key} key in environment specification"
            )
    try:
        check_conda_dependencies(doc)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
