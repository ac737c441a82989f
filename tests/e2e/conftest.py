"""Fixtures of the end-to-end tests: a workspace on a real server, and a model in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport import Model, Workspace
from tests.conftest import ServerProcess


@pytest.fixture
def ws(server: ServerProcess) -> Iterator[Workspace]:
    with Workspace.from_config(server.home) as workspace:
        yield workspace


@pytest.fixture
def model(ws: Workspace, tmp_path: Path) -> Model:
    return register_scaler(ws, tmp_path / "scaler")


def register_scaler(ws: Workspace, folder: Path) -> Model:
    """``scaler``: one folder with ``w.json`` (scale 10), as the test scripts read it."""
    folder.mkdir()
    (folder / "w.json").write_text('{"scale": 10}')
    return Model.register(ws, folder, "scaler")
