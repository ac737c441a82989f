"""Building environments with uv for real (needs the package index, as CI has)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelport.envs.builder import READY, EnvironmentBuilder, build_key, build_problems
from modelport.errors import EnvironmentBuildError
from modelport.spec.environment import (
    EnvironmentSpec,
    conda_environment_document,
    pip_environment_document,
)
from tests.conftest import run_concurrently


def _spec(name: str, requirements: str) -> EnvironmentSpec:
    return EnvironmentSpec.from_document(pip_environment_document(name, requirements))


def test_build_then_cache_hits(tmp_path: Path) -> None:
    machine = tmp_path / "machine"
    first = EnvironmentBuilder(tmp_path / "ws1" / "envs", machine)
    spec = _spec("tiny", "six==1.16.0\n")
    messages: list[str] = []
    built = first.ensure(spec, messages.append)
    assert built.source == "built" and any("building with uv" in m for m in messages)
    check = "import six, httptools, uvloop; print(six.__version__)"
    out = subprocess.run([built.python, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.16.0"  # the user's pin, and the runtime's own packages
    assert first.ensure(spec, messages.append).source == "workspace cache"
    second = EnvironmentBuilder(tmp_path / "ws2" / "envs", machine)
    again = second.ensure(_spec("other-name", "six==1.16.0\n"), messages.append)
    assert again.source == "machine cache" and again.python == built.python


def test_concurrent_requests_build_once(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(tmp_path / "ws" / "envs", tmp_path / "machine")
    spec = _spec("shared", "six==1.16.0\n")
    sources = run_concurrently(lambda: builder.ensure(spec, lambda _m: None).source, 4)
    assert sorted(sources).count("built") == 1


def test_unknown_requirement_fails_with_pips_message(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(tmp_path / "ws" / "envs", tmp_path / "machine")
    spec = _spec("broken", "modelport-no-such-package-anywhere==9.9\n")
    with pytest.raises(EnvironmentBuildError) as info:
        builder.ensure(spec, lambda _m: None)
    assert "modelport-no-such-package-anywhere" in info.value.message
    assert "not found in the package registry" in info.value.message
    assert not (tmp_path / "machine" / build_key(spec) / READY).exists()


OWN_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# What v1's CondaDependencies.create(...).save() wrote (ruamel: comments, blank lines).
V1_ENV = f"""\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

name: project_environment
dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.5.2 and later.
- python={OWN_PYTHON}

- pip:
    # Required packages for AzureML execution, history, and data preparation.
  - azureml-defaults==1.44.0

  - inference-schema==1.3.0
- scikit-learn
channels:
- anaconda
- conda-forge
"""


def _site_has(venv: Path, package: str) -> bool:
    return any(venv.glob(f"lib/python*/site-packages/{package}"))


def test_v1_environment_builds_without_its_serving_packages(tmp_path: Path) -> None:
    machine = tmp_path / "machine"
    spec = EnvironmentSpec.from_document(conda_environment_document("v1-env", V1_ENV, "env.yml"))
    # A build by an older recipe sits under the bare content hash: it must not be served.
    stale = machine / spec.content_hash()
    stale.mkdir(parents=True)
    (stale / READY).write_text("old recipe\n")
    target = machine / build_key(spec)
    messages: list[str] = []
    installed_when_resolved: list[bool] = []

    def progress(line: str) -> None:
        messages.append(line)
        if "Resolved" in line and not installed_when_resolved:  # the user's packages
            installed_when_resolved.append(_site_has(target, "sklearn"))

    built = EnvironmentBuilder(tmp_path / "ws" / "envs", machine).ensure(spec, progress)
    assert built.source == "built" and Path(built.python).is_relative_to(target)
    drops = [m for m in messages if m.startswith("v1 package")]
    assert len(drops) == 2, messages
    assert drops[0].startswith("v1 package azureml-defaults==1.44.0 (pip) left out: ")
    assert drops[1].startswith("v1 package inference-schema==1.3.0 (pip) left out: ")
    # uv's lines came while it ran: "Resolved" was reported before anything was installed.
    assert installed_when_resolved == [False]
    log = (machine / f"{build_key(spec)}.build.log").read_text()
    assert all(line in log for line in drops)
    check = (
        "import importlib.util as u, inference_schema, sklearn; "
        "from importlib.metadata import version; "
        "print(version('inference-schema'), u.find_spec('azureml') is None)"
    )
    out = subprocess.run([built.python, "-c", check], capture_output=True, text=True, check=True)
    schema_version, no_azureml = out.stdout.split()
    assert schema_version != "1.3.0" and no_azureml == "True"


def test_unavailable_python_pin_fails_early_and_says_what_to_do(tmp_path: Path) -> None:
    text = V1_ENV.replace(f"python={OWN_PYTHON}", "python=3.6.2")
    spec = EnvironmentSpec.from_document(conda_environment_document("old-env", text, "env.yml"))
    messages: list[str] = []
    with pytest.raises(EnvironmentBuildError) as info:
        EnvironmentBuilder(tmp_path / "ws" / "envs", tmp_path / "machine").ensure(
            spec, messages.append
        )
    message = info.value.message
    assert "pins python=3.6.2" in message
    assert f"Pythons available here: {'.'.join(map(str, sys.version_info[:3]))}" in message
    assert "Fix: change the pin to one of them" in message
    assert "No interpreter found" not in message  # not uv's own words
    assert not any("building with uv" in m for m in messages)  # refused before any build
    assert not (tmp_path / "machine").exists()
    assert build_problems(spec) == [message.split("\n- ", 1)[1]]
