"""The CLI as a user runs it: real processes, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelport.process import pid_is_modelport, read_server_pid
from tests.conftest import wait_for
from tests.e2e.test_sdk import make_folder, same_tree


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.out)


class Cli:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.env = {**os.environ, "MODELPORT_HOME": str(home), "COLUMNS": "200"}
        self.env.pop("MODELPORT_DATABASE_URL", None)
        self.cwd = cwd

    def __call__(self, *args: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "modelport", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    runner = Cli(home, tmp_path)
    try:
        yield runner
    finally:
        pid = read_server_pid(home)
        runner("down")
        if pid is not None:
            wait_for(lambda: not pid_is_modelport(pid), what="the server to stop")


def test_model_commands_end_to_end(cli: Cli, tmp_path: Path) -> None:
    started = cli("up", "--detach", "--port", "0")
    assert started.code == 0 and "modelport server running at http://127.0.0.1:" in started.out
    folder = make_folder(tmp_path)
    for version in (1, 2, 3):
        r = cli(
            "model",
            "register",
            "-n",
            "cli-model",
            "-p",
            str(folder),
            "--tag",
            f"run={version}",
            "--property",
            "owner=me",
            "-d",
            "a folder model",
        )
        assert r.code == 0 and f"Registered model cli-model:{version}" in r.out, r.err
    listed = cli("model", "list", "-o", "json").json()
    assert [m["id"] for m in listed] == ["cli-model:3", "cli-model:2", "cli-model:1"]
    assert [m["version"] for m in cli("model", "list", "--tag", "run=2", "-o", "json").json()] == [
        2
    ]
    table = cli("model", "list")
    assert table.code == 0 and "cli-model" in table.out and "run=3" in table.out
    shown = cli("model", "show", "-n", "cli-model", "-o", "json").json()
    assert shown["version"] == 3 and shown["properties"] == {"owner": "me"}
    assert cli("model", "show", "-i", "cli-model:2", "-o", "json").json()["tags"] == {"run": "2"}
    got = cli("model", "download", "-n", "cli-model", "-v", "1", "-t", "out")
    assert got.code == 0 and same_tree(folder, tmp_path / "out" / "my_model")
    again = cli("model", "download", "-n", "cli-model", "-v", "1", "-t", "out")
    assert again.code == 2 and "already exists" in again.err
    updated = cli("model", "update", "-i", "cli-model:1", "--add-tag", "stage=prod", "-o", "json")
    assert updated.json()["tags"] == {"run": "1", "stage": "prod"}
    clash = cli("model", "update", "-i", "cli-model:1", "--add-property", "owner=you")
    assert clash.code == 5 and "cannot be changed once set" in clash.err
    deleted = cli("model", "delete", "-i", "cli-model:1")
    assert deleted.code == 0 and "Deleted model cli-model:1" in deleted.out
    assert [m["version"] for m in cli("model", "list", "-o", "json").json()] == [3, 2]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("model", "show", "-n", "ghost"), 3, "Error: model 'ghost' not found"),
        (("model", "show", "-n", "ghost", "-v", "2"), 3, "Error: model ghost:2 not found"),
        (("model", "register", "-n", "bad name", "-p", "."), 2, "Error: invalid model name"),
        (("model", "register", "-n", "m", "-p", "missing"), 2, "does not exist"),
        (("model", "register", "-n", "m", "-p", ".", "--tag", "novalue"), 2, "key=value"),
        (("model", "delete", "-n", "m"), 2, "say which version"),
        (("model", "show"), 2, "-n NAME"),
        (("environment", "register", "-n", "e"), 2, "exactly one of"),
        (
            ("environment", "register", "-n", "e", "--pip-requirements", "nope.txt"),
            2,
            "does not exist",
        ),
        (("environment", "show", "-n", "ghost"), 3, "Error: environment 'ghost' not found"),
    ],
)
def test_bad_input_gives_a_message_and_an_exit_code(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    assert cli("up", "--detach", "--port", "0").code == 0
    result = cli(*args)
    assert result.code == code, (result.out, result.err)
    assert message in result.err


def test_environment_commands(cli: Cli, tmp_path: Path) -> None:
    assert cli("up", "--detach", "--port", "0").code == 0
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    (tmp_path / "env.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n    - numpy\n")
    (tmp_path / "env.json").write_text(
        json.dumps({"name": "from-file", "environmentVariables": {"A": "1"}})
    )
    first = cli(
        "environment",
        "register",
        "-n",
        "sk",
        "--pip-requirements",
        "requirements.txt",
        "--env-var",
        "OMP_NUM_THREADS=1",
    )
    assert first.code == 0 and "version 1" in first.out
    same = cli(
        "environment",
        "register",
        "-n",
        "sk",
        "--pip-requirements",
        "requirements.txt",
        "--env-var",
        "OMP_NUM_THREADS=1",
    )
    assert "version 1" in same.out
    assert cli("environment", "register", "-n", "sk", "--conda-file", "env.yml").code == 0
    assert cli("environment", "register", "-f", "env.json").code == 0
    listed = cli("environment", "list", "-o", "json").json()
    assert sorted((e["name"], e["version"]) for e in listed) == [("from-file", "1"), ("sk", "2")]
    every = cli("environment", "list", "--all-versions", "-n", "sk", "-o", "json").json()
    assert [e["version"] for e in every] == ["2", "1"]
    shown = cli("environment", "show", "-n", "sk", "-v", "1", "-o", "json").json()
    assert shown["definition"]["environmentVariables"] == {"OMP_NUM_THREADS": "1"}
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "python": {\n}')
    bad = cli("environment", "register", "-f", str(broken))
    assert bad.code == 2 and "line 3" in bad.err


def test_server_lifecycle(cli: Cli, tmp_path: Path) -> None:
    no_server = cli("model", "list")
    assert no_server.code == 6 and "modelport up" in no_server.err
    assert cli("up", "--detach", "--port", "0").code == 0
    home = Path(cli.env["MODELPORT_HOME"])
    pid = read_server_pid(home)
    assert pid is not None and pid_is_modelport(pid)
    second = cli("up", "--port", "0")
    assert second.code == 5 and "already running" in second.err
    reused = cli("up", "--detach", "--port", "0")
    assert reused.code == 0 and read_server_pid(home) == pid
    stopped = cli("down")
    assert stopped.code == 0 and f"pid {pid}" in stopped.out
    wait_for(lambda: not pid_is_modelport(pid), what="the server to exit")
    after = cli("model", "list")
    assert after.code == 6 and "cannot reach the modelport server" in after.err


def test_demo_registers_a_sample_model(cli: Cli, tmp_path: Path) -> None:
    first = cli("demo", "--dir", "demo-files", "--port", "0")
    assert first.code == 0, first.err
    assert "registered demo-linear:1" in first.out
    assert (tmp_path / "demo-files" / "model" / "weights.json").is_file()
    second = cli("demo", "--dir", "demo-files", "--port", "0")
    assert second.code == 0 and "registered demo-linear:2" in second.out


def test_validate_reports_v1_problems_in_files(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "deploymentconfig.json"
    good.write_text(json.dumps({"computeType": "aks", "containerResourceRequirements": {"cpu": 1}}))
    ok = cli("validate", "--dc", str(good), "-o", "json")
    assert ok.code == 0
    settings = ok.json()[0]["settings"]
    assert settings["cpu_cores"] == 1 and settings["autoscale_max_replicas"] == 10
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "computeType: aks\nautoScaler:\n  autoscaleEnabled: true\n  minReplicas: 4\n  maxReplicas: 2\ncontainerResourceRequirements:\n  cpu: -1\n"
    )
    result = cli("validate", "--dc", str(bad))
    assert result.code == 2
    assert "bad.yml: Invalid configuration, cpu_cores must be greater than zero." in result.err
    assert "autoscale_min_replicas cannot be greater than autoscale_max_replicas" in result.err
    (tmp_path / "score.py").write_text("def init(:\n")
    (tmp_path / "inferenceconfig.json").write_text('{"entryScript": "score.py"}')
    broken = cli("validate", "--ic", str(tmp_path / "inferenceconfig.json"))
    assert broken.code == 2 and "syntax error at line 1" in broken.err
    missing = cli("validate", "--dc", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "does not exist" in missing.err
