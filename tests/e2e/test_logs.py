"""What the server writes to its logs: no query strings, and for the owner's eyes only."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, wait_for


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
