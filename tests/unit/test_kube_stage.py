"""The staging step's own decisions, with a fake control plane (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from modelport.compute.kubernetes import stage
from modelport.compute.kubernetes.stage import Settings, StageError

ENV = {
    "MODELPORT_STAGE_URL": "http://cp:7370/",
    "MODELPORT_STAGE_TOKEN": "t",
    "MODELPORT_SERVICE": "iris",
    "MODELPORT_GENERATION": "4",
    "MODELPORT_APP_ROOT": "/var/azureml-app",
    "MODELPORT_RUNTIME_DIR": "/var/modelport/runtime",
    "MODELPORT_ENV_CACHE": "/var/modelport/envs",
}


class FakePlane:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.fetched: list[str] = []

    def download(self, sha256: str, target: Path) -> str:
        self.fetched.append(sha256)
        target.write_bytes(self.blobs[sha256])
        return hashlib.sha256(self.blobs[sha256]).hexdigest()


def _entry(path: str, content: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}


def test_settings_come_from_the_pod_environment() -> None:
    settings = Settings.from_env(ENV)
    assert settings.url == "http://cp:7370"
    assert settings.path == "/api/v1/staging/iris/4"
    assert settings.environment is None
    assert settings.app_root == Path("/var/azureml-app")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MODELPORT_STAGE_TOKEN": ""}, "MODELPORT_STAGE_TOKEN is not set"),
        ({"MODELPORT_GENERATION": "four"}, "MODELPORT_GENERATION 'four' is not a number"),
        ({"MODELPORT_ENVIRONMENT": "{"}, "MODELPORT_ENVIRONMENT is not an environment"),
        ({"MODELPORT_ENVIRONMENT": '{"name": 3}'}, "MODELPORT_ENVIRONMENT is not an environment"),
    ],
)
def test_wrong_settings_exit_2_naming_the_setting(change: dict[str, str], message: str) -> None:
    with pytest.raises(StageError) as info:
        Settings.from_env({**ENV, **change})
    assert info.value.code == stage.SETTINGS
    assert info.value.message.startswith(message)


def test_files_are_placed_and_each_blob_fetched_once(tmp_path: Path) -> None:
    plane = FakePlane({hashlib.sha256(c).hexdigest(): c for c in (b"a", b"b")})
    layout = {
        "files": [_entry("src/a.py", b"a"), _entry("m/1/a.bin", b"a"), _entry("m/1/b", b"b")],
        "folders": ["m/1", "m/1/empty"],
    }
    assert stage.place_files(plane, layout, tmp_path, lambda _l: None) == 2  # type: ignore[arg-type]
    assert (tmp_path / "m" / "1" / "a.bin").read_bytes() == b"a"
    assert (tmp_path / "m" / "1" / "empty").is_dir()
    assert len(plane.fetched) == 2
    assert not list(tmp_path.rglob(".*.part"))


def test_a_path_out_of_the_app_folder_is_refused(tmp_path: Path) -> None:
    plane = FakePlane({hashlib.sha256(b"x").hexdigest(): b"x"})
    for path in ("../x", "/etc/x", "a/../../x"):
        layout = {"files": [_entry(path, b"x")], "folders": []}
        with pytest.raises(StageError) as info:
            stage.place_files(plane, layout, tmp_path / "app", lambda _l: None)  # type: ignore[arg-type]
        assert info.value.code == stage.REFUSED
    assert plane.fetched == []


def test_content_that_does_not_match_is_refused_and_removed(tmp_path: Path) -> None:
    entry = _entry("src/a.py", b"expected")
    plane = FakePlane({entry["sha256"]: b"something else"})
    with pytest.raises(StageError) as info:
        stage.place_files(plane, {"files": [entry], "folders": []}, tmp_path, lambda _l: None)  # type: ignore[arg-type]
    assert info.value.code == stage.CORRUPT
    assert "refusing to stage it" in info.value.message
    assert list(tmp_path.rglob("*")) == [tmp_path / "src"]


def test_the_runtime_copy_replaces_an_older_one(tmp_path: Path) -> None:
    (tmp_path / "modelport").mkdir()
    (tmp_path / "modelport" / "stale.py").write_text("")
    copied = stage.copy_runtime(tmp_path)
    assert (copied / "runtime" / "__main__.py").is_file()
    assert not (copied / "stale.py").exists()
    assert not list(copied.rglob("__pycache__"))


def test_services_prepared_at_once_share_one_whole_runtime_copy(tmp_path: Path) -> None:
    """An endpoint's versions are prepared together: each copies into a folder of its own
    and renames it into place, so none sees another's half copy or loses its own."""
    from concurrent.futures import ThreadPoolExecutor

    from modelport.compute.layout import runtime_copy

    with ThreadPoolExecutor(4) as pool:
        copies = list(pool.map(lambda _: runtime_copy(tmp_path), range(8)))
    assert len(set(copies)) == 1
    assert (copies[0] / "modelport" / "runtime" / "__main__.py").is_file()
    assert [p.name for p in (tmp_path / "runtime").iterdir()] == [copies[0].name]
