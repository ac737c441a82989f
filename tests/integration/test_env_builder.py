"""Building environments with uv for real (needs the package index, as CI has)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from modelport.envs.builder import READY, EnvironmentBuilder
from modelport.errors import EnvironmentBuildError
from modelport.spec.environment import EnvironmentSpec, pip_environment_document
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
    assert not (tmp_path / "machine" / spec.content_hash() / READY).exists()
