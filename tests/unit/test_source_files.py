"""A source directory is uploaded as it is seen from inside: links may not lead out."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.errors import InvalidInputError
from modelport.sdk.uploads import source_files


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "score.py").write_text("def init(): pass\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    return src


def test_links_inside_the_folder_are_followed(tmp_path: Path) -> None:
    src = _folder(tmp_path)
    (src / "alias.py").symlink_to(src / "score.py")
    (src / "same-pkg").symlink_to(src / "pkg", target_is_directory=True)
    (src / "pkg" / "loop").symlink_to(src, target_is_directory=True)  # a cycle
    names = [rel for rel, _ in source_files(src)]
    # A folder reached twice is sent once, as in model folders; the cycle ends.
    assert names == ["alias.py", "score.py", "pkg/util.py"]


def test_a_file_link_leading_out_is_refused(tmp_path: Path) -> None:
    src = _folder(tmp_path)
    secret = tmp_path / "hostname"
    secret.write_text("machine-name\n")
    (src / "pkg" / "hostname").symlink_to(secret)
    with pytest.raises(InvalidInputError, match="leads outside the source_directory"):
        source_files(src)


def test_a_folder_link_leading_out_is_refused(tmp_path: Path) -> None:
    src = _folder(tmp_path)
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    (src / "etc").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInputError, match="leads outside the source_directory"):
        source_files(src)


def test_an_ignored_link_is_not_looked_at(tmp_path: Path) -> None:
    src = _folder(tmp_path)
    (src / "escape").symlink_to(tmp_path, target_is_directory=True)
    (src / ".amlignore").write_text("escape/\n")
    assert [rel for rel, _ in source_files(src)] == [".amlignore", "score.py", "pkg/util.py"]
