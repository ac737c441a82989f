"""What the server writes to its logs: no query strings, and for the owner's eyes only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from modelport import InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ModelportError
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_services import fixed

T = TypeVar("T")


def test_the_access_log_keeps_no_query_string(server: ServerProcess) -> None:
    secret = "q-secret-0d1e"
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(f"{server.url}/api/v1/models?token={secret}", headers=headers)
    assert response.status_code == 200
    anonymous = httpx.get(f"{server.url}/api/v1/models?access_token={secret}")
    assert anonymous.status_code == 401
    log = Path(server.log.name)

    def logged() -> str | None:
        server.log.flush()
        text = log.read_text(errors="replace")
        return text if text.count('"GET /api/v1/models HTTP/1.1"') >= 2 else None

    text = wait_for(logged, what="both requests in the access log")
    assert secret not in text
    assert server.token not in text


def test_logs_are_private_to_the_owner(server: ServerProcess) -> None:
    logs = server.home / "logs"
    files = wait_for(lambda: sorted(logs.glob("*.log")) or None, what="the router's log")
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


PRINTING = """
    import json

    def init():
        print("init printed this")

    def run(raw):
        body = json.loads(raw)
        print("scoring", body["n"])
        if body.get("fail"):
            raise ValueError("failed on purpose")
        return {"n": body["n"]}
"""


def _printing_service(ws: Workspace, model: Model, tmp_path: Path) -> Webservice:
    folder = tmp_path / "printing"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(PRINTING))
    config = InferenceConfig(entry_script="score.py", source_directory=folder)
    service = Model.deploy(ws, "printing-svc", [model], config, fixed(2, auth_enabled=False))
    service.wait_for_deployment()
    assert service.state == "Healthy"
    return service


def _collect(items: Iterator[T], into: list[T], until: Callable[[T], bool]) -> threading.Thread:
    """Read a followed stream in a thread until an item passes ``until``."""

    def read() -> None:
        for item in items:
            into.append(item)
            if until(item):
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_followed_logs_show_a_print_with_its_request_id(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    service = _printing_service(ws, model, tmp_path)
    lines: list[str] = []
    marker = "scoring 41"
    _collect(service.follow_logs(), lines, lambda line: marker in line)
    wait_for(lambda: any("init printed this" in x for x in lines), what="the logs so far")
    # A line printed outside a request carries no id.
    assert any(x.endswith("] init printed this") and x.startswith("[replica-") for x in lines)
    answer = httpx.post(service.scoring_uri, json={"n": 41}, timeout=30)
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    line = wait_for(
        lambda: next((x for x in lines if marker in x), None), what="the printed line, followed"
    )
    assert line.startswith("[replica-") and line.endswith(f"] [{request_id}] {marker}")
    one = service.get_logs(replica=0, tail=3)
    assert one and all(x.startswith("[replica-0] ") for x in one.splitlines())
    assert "[replica-" in service.get_logs(since="5m")
    with pytest.raises(ModelportError, match="not a duration"):
        service.get_logs(since="yesterday")
    assert "=== replica-" in service.get_logs(50)  # v1's answer without the options


def test_the_router_logs_each_request_without_credentials(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess
) -> None:
    service = _printing_service(ws, model, tmp_path)
    followed: list[dict[str, Any]] = []
    _collect(service.follow_requests(status="5xx"), followed, lambda doc: True)
    secret = "Bearer not-a-real-key-9f3"
    headers = {"x-ms-client-request-id": "client-7", "Authorization": secret}
    ok = httpx.post(f"{service.scoring_uri}?code=q-secret", json={"n": 1}, headers=headers)
    failed = httpx.post(service.scoring_uri, json={"n": 2, "fail": True})
    assert (ok.status_code, failed.status_code) == (200, 502)

    def logged() -> list[dict[str, Any]] | None:
        found = service.get_requests()
        return found if len(found) >= 2 else None

    first, second = wait_for(logged, what="both requests in the request log")[-2:]
    assert (first["status"], first["requestId"]) == (200, ok.headers["x-request-id"])
    assert first["clientRequestId"] == "client-7" and first["service"] == "printing-svc"
    assert first["latencyMs"] > 0 and first["queueWaitMs"] >= 0
    assert first["replica"].startswith("127.0.0.1:") and first["bytesIn"] == len(ok.request.content)
    assert second["status"] == 502
    assert [d["requestId"] for d in service.get_requests(status="5xx")] == [second["requestId"]]
    assert len(service.get_requests(tail=1)) == 1
    done = wait_for(lambda: followed, what="the failed request, followed")
    assert done[0]["requestId"] == failed.headers["x-request-id"]
    files = sorted((server.home / "logs").glob("requests-*.jsonl"))
    text = "".join(f.read_text() for f in files)
    assert "not-a-real-key" not in text and "q-secret" not in text
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    env = {**os.environ, "MODELPORT_HOME": str(server.home)}
    command = [sys.executable, "-m", "modelport", "service", "requests", "-n", "printing-svc"]
    shown = subprocess.run([*command, "--status", "502"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and " 502 " in shown.stdout and " 200 " not in shown.stdout
    bad = subprocess.run([*command, "--status", "2oo"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "neither a status nor a class" in bad.stderr
    assert "Traceback" not in bad.stderr
