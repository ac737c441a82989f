"""The docs say what the code does: every setting on the migration page, no dead links."""

from __future__ import annotations

import re
from pathlib import Path

from modelport.spec.deployment import FIELDS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating-from-azureml-v1.md"


def settings_rows() -> list[tuple[str, str, str]]:
    text = PAGE.read_text()
    table = text.split("<!-- settings table")[1].split("<!-- end of settings table -->")[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def test_the_migration_page_lists_every_setting_once_with_what_it_does() -> None:
    rows = settings_rows()
    documented = [(key, name) for key, name, _ in rows]
    declared = [(".".join(f.path) if f.path else "(none)", f.name) for f in FIELDS]
    assert sorted(documented) == sorted(declared)
    assert len(set(documented)) == len(documented)
    assert all(what for *_, what in rows)


def test_readme_links_only_to_files_a_clone_has() -> None:
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    assert "../shared" not in readme
    assert "docs/migrating-from-azureml-v1.md" in readme
