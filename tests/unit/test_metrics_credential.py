"""The metrics port's credential: made by the CLI, kept as a digest, checked in one place."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelport.cli.main import cli
from modelport.control.metrics_port import (
    allowed,
    credential_path,
    digest,
    metrics_digest,
    new_metrics_token,
)

ADMIN = "a" * 43


def test_the_metrics_token_or_the_admin_token_and_nothing_else() -> None:
    token = "mpm_secret"
    kept = digest(token)
    assert allowed(b"Bearer mpm_secret", ADMIN, kept)
    assert allowed(b"bearer mpm_secret", ADMIN, kept)
    assert allowed(f"Bearer {ADMIN}".encode(), ADMIN, kept)
    assert allowed(f"Bearer {ADMIN}".encode(), ADMIN, None)  # no metrics token made yet
    for header in (b"", b"Bearer", b"Bearer ", b"Basic mpm_secret", b"mpm_secret", b"Bearer x"):
        assert not allowed(header, ADMIN, kept), header
    assert not allowed(b"Bearer " + kept.encode(), ADMIN, kept)  # the digest is no token


def test_the_workspace_keeps_only_a_digest_and_a_new_token_replaces_the_old(
    tmp_path: Path,
) -> None:
    assert metrics_digest(tmp_path) is None
    first = new_metrics_token(tmp_path)
    kept = credential_path(tmp_path)
    assert first not in kept.read_text() and metrics_digest(tmp_path) == digest(first)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    second = new_metrics_token(tmp_path)
    assert second != first and metrics_digest(tmp_path) == digest(second)


def test_the_cli_writes_the_token_to_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    out = tmp_path / "prometheus" / "modelport.token"
    result = CliRunner().invoke(cli, ["metrics", "token", "--file", str(out)])
    assert result.exit_code == 0, result.output
    token = out.read_text().strip()
    assert token not in result.output and stat.S_IMODE(out.stat().st_mode) == 0o600
    kept = json.loads(credential_path(tmp_path / "home").read_text())
    assert kept == {"sha256": digest(token)}
    shown = CliRunner().invoke(cli, ["metrics", "token"])
    assert shown.exit_code == 0 and metrics_digest(tmp_path / "home") == digest(
        shown.output.strip()
    )
