"""What the dashboard's pages compute from the API's answers: the split's steps, the
curl line, model usage; and the vendored assets matching their recorded digests."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import pytest

from modelport.control.dashboard import views
from modelport.errors import ConfigError, NotFoundError
from modelport.spec.endpoint import CONTROL, Version

VENDOR = Path(__file__).resolve().parents[2] / "src/modelport/control/dashboard/static/vendor"


def test_lowered_percentages_go_first_so_no_step_passes_100() -> None:
    steps = views.split_steps({"blue": 80, "green": 20}, {"blue": 10, "green": 90})
    assert steps == [("blue", 10), ("green", 90)]
    total = {"blue": 80, "green": 20}
    for name, pct in steps:
        total[name] = pct
        assert sum(total.values()) <= 100


def test_unchanged_versions_make_no_step() -> None:
    assert views.split_steps({"a": 50, "b": 0}, {"a": 50, "b": 0}) == []


def _versions() -> list[Version]:
    return [Version("blue", 0, True, CONTROL), Version("green", 0)]


def test_a_split_over_100_is_refused_whole_with_the_apis_message() -> None:
    with pytest.raises(ConfigError, match="add up to 120%"):
        views.checked_split(_versions(), {"blue": 60, "green": 60}, None, None)


def test_a_split_naming_no_such_version_is_refused() -> None:
    with pytest.raises(NotFoundError, match="no version 'gold'"):
        views.checked_split(_versions(), {"blue": 0, "green": 10}, "gold", None)


def test_a_good_split_passes_with_a_new_default_and_control() -> None:
    views.checked_split(_versions(), {"blue": 30, "green": 70}, "green", "green")


def test_the_curl_line_quotes_the_body_and_keeps_the_key_a_variable() -> None:
    line = views.curl_line("http://h/api/v1/service/s/score", '{"a": "it\'s"}')
    parts = shlex.split(line)
    assert parts[-1] == '{"a": "it\'s"}'
    assert "Authorization: Bearer $KEY" in parts


def test_models_are_listed_with_the_services_and_endpoints_using_them() -> None:
    used = views.model_usage(
        [{"name": "demo", "models": ["m:1"]}], [{"name": "shop", "models": ["m:1", "n:2"]}]
    )
    assert used == {
        "m:1": [("services", "demo"), ("endpoints", "shop")],
        "n:2": [("endpoints", "shop")],
    }


def test_a_tracebacks_reason_keeps_its_first_and_last_line() -> None:
    error = (
        "replica exited with code 3; last log lines:\n  Traceback (most recent call last):\n"
        '    File "score.py", line 2, in init\n  RuntimeError: init exploded\n'
        "--- modelport: the replica exited with code 3 ---\n"
    )
    assert views.reason(error) == (
        "replica exited with code 3; last log lines … RuntimeError: init exploded"
    )
    assert views.reason("no room on any node") == "no room on any node"
    assert views.reason(None) is None


def test_replicas_ready_of_desired() -> None:
    view = {"replicas": [{"state": "Ready"}, {"state": "Starting"}]}
    assert views.replica_counts(view) == (1, 2)


def test_vendored_assets_match_their_recorded_digests() -> None:
    table = (VENDOR / "README.md").read_text()
    rows = re.findall(r"^\| (\S+) \| .* \| ([0-9a-f]{64}) \|$", table, re.MULTILINE)
    assert len(rows) == 3
    for name, digest in rows:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
