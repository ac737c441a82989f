"""The CLI as a user runs it: real processes, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelport.process import pid_is_modelport, read_server_pid
from tests.conftest import alive, descendants, wait_for
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


def stop_server_of(runner: Cli, home: Path) -> None:
    """``modelport down``; the server, its router and its replicas must be gone."""
    pid = read_server_pid(home)
    family = descendants(pid) if pid is not None else set()
    runner("down")
    if pid is not None:
        wait_for(lambda: not pid_is_modelport(pid), what="the server to stop")
    wait_for(lambda: not any(alive(p) for p in family), what="router and replicas to stop")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    runner = Cli(home, tmp_path)
    try:
        yield runner
    finally:
        stop_server_of(runner, home)


@pytest.fixture(scope="module")
def cli_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A CLI with a server it started (``up --detach``), shared by tests that only read:
    refused commands change nothing, so one server answers them all."""
    folder = tmp_path_factory.mktemp("cli-up")
    home = folder / "home"
    runner = Cli(home, folder)
    try:
        assert runner("up", "--detach", "--port", "0", "--router-port", "0").code == 0
        yield runner
    finally:
        stop_server_of(runner, home)


def test_model_commands_end_to_end(cli: Cli, tmp_path: Path) -> None:
    started = cli("up", "--detach", "--port", "0", "--router-port", "0")
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
    cli_up: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    result = cli_up(*args)
    assert result.code == code, (result.out, result.err)
    assert message in result.err


def test_environment_commands(cli: Cli, tmp_path: Path) -> None:
    assert cli("up", "--detach", "--port", "0", "--router-port", "0").code == 0
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


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_server_lifecycle(cli: Cli, tmp_path: Path) -> None:
    no_server = cli("model", "list")
    assert no_server.code == 6 and "modelport up" in no_server.err
    started = cli("up", "--detach", "--port", "0", "--router-port", "0", "--workers", "2")
    assert started.code == 0, started.err
    home = Path(cli.env["MODELPORT_HOME"])
    pid = read_server_pid(home)
    assert pid is not None and pid_is_modelport(pid)
    config = json.loads((home / "config.json").read_text())
    admin = {"Authorization": f"Bearer {config['token']}"}
    workers = config["routerAdminUrls"]
    assert len(workers) == 2 and config["routerAdminUrl"] == workers[0]
    for url in workers:  # each router worker answers on its own admin port
        assert httpx.get(f"{url}/healthz", headers=admin).status_code == 200
    second = cli("up", "--port", "0")
    assert second.code == 5 and "already running" in second.err
    reused = cli("up", "--detach", "--port", "0", "--router-port", "0")
    assert reused.code == 0 and read_server_pid(home) == pid
    stopped = cli("down")
    assert stopped.code == 0 and f"pid {pid}" in stopped.out
    wait_for(lambda: not pid_is_modelport(pid), what="the server to exit")
    wait_for(lambda: not any(_answers(url) for url in workers), what="the router workers to exit")
    after = cli("model", "list")
    assert after.code == 6 and "cannot reach the modelport server" in after.err


def test_demo_deploys_and_its_curl_line_scores(cli: Cli, tmp_path: Path) -> None:
    first = cli("demo", "--dir", "demo-files", "--port", "0", "--router-port", "0")
    assert first.code == 0, first.err
    assert "registered model iris-classifier:1" in first.out
    assert "['setosa', 'versicolor', 'virginica']" in first.out
    for name in ("score.py", "inferenceconfig.json", "deploymentconfig.json"):
        assert list((tmp_path / "demo-files").rglob(name)), name
    curl = next(line for line in first.out.splitlines() if line.startswith("curl "))
    scored = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert json.loads(scored.stdout) == ["setosa"]
    second = cli("demo", "--dir", "demo-files", "--port", "0", "--router-port", "0")
    assert second.code == 0 and "registered model iris-classifier:2" in second.out
    assert "environment iris-demo-env" in second.err and "cache hit" in second.err
    # The last line's command works as printed, from where the user stands.
    down = second.out.strip().splitlines()[-1].split("`")[1]
    stopped = subprocess.run(
        ["bash", "-c", down], env=cli.env, cwd=cli.cwd, capture_output=True, text=True, timeout=120
    )
    assert stopped.returncode == 0 and "stopped the modelport server" in stopped.stdout


V1_SCORE = """
import json

def init():
    global offset
    offset = {offset}

def run(raw_data):
    return [x + offset for x in json.loads(raw_data)["data"]]
"""


def test_deploy_and_service_commands(cli: Cli, tmp_path: Path) -> None:
    assert cli("up", "--detach", "--port", "0", "--router-port", "0").code == 0
    (tmp_path / "model.txt").write_text("weights")
    assert cli("model", "register", "-n", "adder", "-p", "model.txt").code == 0
    for version, offset in (("v1", 100), ("v2", 200)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "score.py").write_text(V1_SCORE.format(offset=offset))
        (tmp_path / version / "inferenceconfig.json").write_text(
            json.dumps({"entryScript": "score.py", "sourceDirectory": "."})
        )
    (tmp_path / "deploymentconfig.json").write_text(
        json.dumps(
            {"computeType": "aks", "numReplicas": 2, "autoScaler": {"autoscaleEnabled": False}}
        )
    )
    deployed = cli(
        "model",
        "deploy",
        "-n",
        "adder-svc",
        "-m",
        "adder:1",
        "-ic",
        "v1/inferenceconfig.json",
        "-dc",
        "deploymentconfig.json",
    )
    assert deployed.code == 0, deployed.err
    assert "Service adder-svc is Healthy" in deployed.out and "replica(s) ready" in deployed.err
    listed = cli("service", "list", "-o", "json").json()
    assert [(s["name"], s["state"]) for s in listed] == [("adder-svc", "Healthy")]
    assert (
        cli("service", "run", "-n", "adder-svc", "-d", '{"data": [1, 2]}').out.strip()
        == "[101, 102]"
    )
    keys = cli("service", "keys", "-n", "adder-svc", "-o", "json").json()
    assert cli("service", "get-keys", "-n", "adder-svc", "-o", "json").json() == keys
    regenerated = cli("service", "regen-key", "-n", "adder-svc", "-k", "Primary")
    assert regenerated.code == 0
    new_key = regenerated.out.strip().splitlines()[-1]  # printed, as v1 returns it
    assert new_key != keys["primaryKey"]
    assert cli("service", "keys", "-n", "adder-svc", "-o", "json").json()["primaryKey"] == new_key
    shown = cli("service", "show", "-n", "adder-svc").out  # a pipe: plain lines, nothing cut
    uri = cli("service", "show", "-n", "adder-svc", "-o", "json").json()["scoringUri"]
    row = next(line.split() for line in shown.splitlines() if line.startswith("scoringUri"))
    assert row == ["scoringUri", uri] and "─" not in shown and "…" not in shown
    assert "calling init() of" in cli("service", "get-logs", "-n", "adder-svc").out
    assert "calling init() of" in cli("service", "logs", "-n", "adder-svc", "-l", "20").out
    updated = cli("service", "update", "-n", "adder-svc", "--ic", "v2/inferenceconfig.json")
    assert updated.code == 0, updated.err
    assert cli("service", "run", "-n", "adder-svc", "-d", '{"data": [1]}').out.strip() == "[201]"
    shown = cli("service", "show", "-n", "adder-svc", "-o", "json").json()
    assert shown["generation"] == 2 and shown["state"] == "Healthy"
    taken = cli(
        "model", "deploy", "-n", "adder-svc", "-m", "adder:1", "--ic", "v1/inferenceconfig.json"
    )
    assert taken.code == 5 and "--overwrite" in taken.err
    assert cli("service", "delete", "-n", "adder-svc").code == 0
    gone = cli("service", "show", "-n", "adder-svc")
    assert gone.code == 3 and "Webservice with name adder-svc not found" in gone.err


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


def test_capacity_takes_the_configs_percent_and_answers_json(cli: Cli) -> None:
    percent = cli("capacity", "--rps", "20", "--latency-s", "10", "--target-utilization", "70")
    assert percent.code == 0 and "= 286" in percent.out
    fraction = cli("capacity", "--rps", "20", "--latency-s", "10", "-o", "json").json()
    assert fraction["replicas"] == 286 and fraction["targetUtilization"] == 0.7


def test_a_busy_scoring_port_names_the_flag(cli: Cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = cli("up", "--detach", "--port", "0", "--router-port", port)
    assert result.code == 6
    assert f"cannot listen on 127.0.0.1:{port}" in result.err and "--router-port" in result.err


def test_validate_refuses_warns_and_flags_what_will_not_build(cli: Cli, tmp_path: Path) -> None:
    token = tmp_path / "token.json"
    both = {"computeType": "AKS", "tokenAuthEnabled": True, "authEnabled": True}
    token.write_text(json.dumps(both))
    refused = cli("validate", "--dc", str(token))
    assert refused.code == 2 and "auth_enabled and token_auth_enabled cannot both be true." in (
        refused.err
    )
    token.write_text(json.dumps({"computeType": "AKS", "tokenAuthEnabled": True}))
    assert cli("validate", "--dc", str(token)).code == 0
    endpoint = tmp_path / "endpoint.json"
    endpoint.write_text(json.dumps({"computeType": "AKSENDPOINT", "trafficPercentile": 200}))
    wrong = cli("validate", "--dc", str(endpoint))
    assert (
        wrong.code == 2 and "traffic_percentile cannot be negative or greater than 100" in wrong.err
    )
    endpoint.write_text(json.dumps({"computeType": "AKSENDPOINT", "trafficPercentile": 20}))
    valid = cli("validate", "--dc", str(endpoint), "-o", "json")
    assert valid.code == 0 and valid.json()[0]["settings"]["traffic_percentile"] == 20
    traced = tmp_path / "traced.json"
    traced.write_text(json.dumps({"computeType": "aks", "appInsightsEnabled": True}))
    warned = cli("validate", "--dc", str(traced), "-o", "json")
    assert warned.code == 0 and "Warning: traced.json: appInsightsEnabled" in warned.err
    assert any("no traces are sent" in w for w in warned.json()[0]["warnings"])
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return 1\n")
    (tmp_path / "myenv.yml").write_text(
        "name: project_environment\ndependencies:\n- python=3.6.2\n- pip:\n  - azureml-defaults\n"
    )
    ic = tmp_path / "inferenceconfig.json"
    ic.write_text(
        json.dumps({"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml"})
    )
    old = cli("validate", "--ic", str(ic))
    assert old.code == 7, old.err
    assert "will not build here" in old.err and "python=3.6.2" in old.err


def test_endpoint_commands_mirror_v1s_files_and_flags(cli: Cli, tmp_path: Path) -> None:
    """An AKSENDPOINT file makes an endpoint through model deploy (as v1's CLI) or
    endpoint create; versions are added, split, listed, compared and deleted, -o json
    everywhere, and bad input is a message and an exit code."""
    assert cli("up", "--detach", "--port", "0", "--router-port", "0").code == 0
    (tmp_path / "model.txt").write_text("weights")
    assert cli("model", "register", "-n", "adder", "-p", "model.txt").code == 0
    for version, offset in (("v1", 100), ("v2", 200)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "score.py").write_text(V1_SCORE.format(offset=offset))
        (tmp_path / version / "inferenceconfig.json").write_text(
            json.dumps({"entryScript": "score.py", "sourceDirectory": "."})
        )
    (tmp_path / "endpoint.json").write_text(
        json.dumps(
            {
                "computeType": "AKSENDPOINT",
                "versionName": "first",
                "numReplicas": 1,
                "autoScaler": {"autoscaleEnabled": False},
            }
        )
    )
    made = cli(
        "model", "deploy", "-n", "adder-ep", "-m", "adder:1",
        "-ic", "v1/inferenceconfig.json", "-dc", "endpoint.json",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "adder-ep is Healthy" in made.out
    second = cli(
        "endpoint", "version", "create", "-n", "adder-ep", "--version-name", "second",
        "-m", "adder:1", "--ic", "v2/inferenceconfig.json", "--traffic-percentile", "30",
        "-o", "json",
    )  # fmt: skip
    assert second.code == 0, second.err
    shares = {n: v["share"] for n, v in second.json()["versions"].items()}
    assert shares == {"first": 70, "second": 30}
    listed = cli("endpoint", "list", "-o", "json").json()
    assert [(e["name"], e["state"]) for e in listed] == [("adder-ep", "Healthy")]
    versions = cli("endpoint", "version", "list", "-n", "adder-ep", "-o", "json").json()
    assert [(v["name"], v["versionType"]) for v in versions] == [
        ("first", "Control"),
        ("second", "Treatment"),
    ]
    pinned = cli(
        "endpoint", "run", "-n", "adder-ep", "--version-name", "second", "-d", '{"data": [1]}'
    )
    assert pinned.out.strip() == "[201]"
    for _ in range(10):
        assert cli("service", "run", "-n", "adder-ep", "-d", '{"data": [1]}').code == 0
    compared = cli("endpoint", "compare", "-n", "adder-ep", "-o", "json").json()
    counted = {n: v["requests"] for n, v in compared["versions"].items()}
    assert sum(counted.values()) == 11 and 3 <= counted["second"] <= 5  # 1 pinned + 30 % of 10
    table = cli("endpoint", "compare", "-n", "adder-ep").out
    assert "first" in table and "Control" in table and "p99 ms" in table
    over = cli(
        "endpoint", "version", "update", "-n", "adder-ep", "--version-name", "first",
        "--traffic-percentile", "80",
    )  # fmt: skip
    assert over.code == 2 and "add up to 110%, over 100% (first 80%, second 30%)" in over.err
    gone = cli("endpoint", "version", "delete", "-n", "adder-ep", "--version-name", "first")
    assert gone.code == 2 and "'first' is the default" in gone.err
    updated = cli(
        "endpoint", "version", "update", "-n", "adder-ep", "--version-name", "second",
        "--is-default", "--is-control", "-o", "json", "--no-wait",
    )  # fmt: skip
    assert updated.code == 0, updated.err
    second_now = updated.json()["versions"]["second"]
    assert (second_now["isDefault"], second_now["versionType"], second_now["share"]) == (
        True,
        "Control",
        100,
    )
    assert cli("endpoint", "version", "delete", "-n", "adder-ep", "--vn", "first").code == 0
    events = cli("endpoint", "events", "-n", "adder-ep", "-o", "json")
    assert events.code == 0 and events.json() == []
    missing = cli("endpoint", "show", "-n", "nope")
    assert missing.code == 3 and "Endpoint with name nope not found" in missing.err
    assert cli("endpoint", "delete", "-n", "adder-ep").code == 0
    assert cli("endpoint", "list", "-o", "json").json() == []
