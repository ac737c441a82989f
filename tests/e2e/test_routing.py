"""Real replicas behind the router: settings from the file reach it, workers share it."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx

from modelport import InferenceConfig, Model, Webservice, Workspace
from modelport.spec.deployment import deployment_config_from_document
from tests.conftest import ServerProcess, wait_for
from tests.e2e.conftest import register_scaler
from tests.e2e.test_services import fixed, post, source
from tests.prom import total


def router_stats(home: Path, name: str) -> dict[str, Any]:
    config = json.loads((home / "config.json").read_text())
    headers = {"Authorization": f"Bearer {config['token']}"}
    stats = httpx.get(f"{config['routerAdminUrl']}/stats", headers=headers).json()
    return dict(stats["services"].get(name, {}))


def test_queue_settings_flow_from_the_file_to_the_router(
    ws: Workspace, model: Model, tmp_path: Path, server: ServerProcess, exchange: Path
) -> None:
    # 11 at once per replica (the threaded invoker), so the queue holds 10 x 11 = 110.
    doc = {
        "computeType": "aks",
        "numReplicas": 1,
        "autoScaler": {"autoscaleEnabled": False},
        "authEnabled": False,
        "maxConcurrentRequestsPerContainer": 11,
        "maxQueueWaitMs": 30000,
    }
    config = deployment_config_from_document(doc)
    service = Model.deploy(ws, "queue-svc", [model], source(tmp_path), config)
    service.wait_for_deployment()
    hold = exchange / "hold"

    async def go() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as c:
            held = [
                asyncio.ensure_future(c.post(service.scoring_uri, json={"hold": str(hold)}))
                for _ in range(11)
            ]
            await _until(lambda: router_stats(server.home, "queue-svc").get("inFlight") == 11)
            queued = [
                asyncio.ensure_future(c.post(service.scoring_uri, json={"x": [1]}))
                for _ in range(111)
            ]
            await _until(lambda: router_stats(server.home, "queue-svc").get("queued") == 110)
            await _until(lambda: sum(q.done() for q in queued) == 1)
            hold.unlink()
            return list(await asyncio.gather(*held)), list(await asyncio.gather(*queued))

    held, queued = asyncio.run(go())
    assert [r.status_code for r in held] == [200] * 11  # all eleven ran at once
    refused = [r for r in queued if r.status_code == 503]
    assert len(refused) == 1 and refused[0].json()["error"]["code"] == "queue_full"
    assert sum(r.status_code == 200 for r in queued) == 110

    short = fixed(1, auth_enabled=False, max_request_wait_time=1500)
    quick = Model.deploy(ws, "wait-svc", [model], source(tmp_path, name="w"), short)
    quick.wait_for_deployment()
    results: dict[str, httpx.Response] = {}

    async def waits() -> None:
        async with httpx.AsyncClient(timeout=60) as c:
            first = asyncio.ensure_future(c.post(quick.scoring_uri, json={"hold": str(hold)}))
            await _until(hold.exists)
            results["late"] = await c.post(quick.scoring_uri, json={"x": [1]})
            hold.unlink()
            results["first"] = await first

    asyncio.run(waits())
    late = results["late"].json()["error"]
    assert results["late"].status_code == 503 and late["code"] == "queue_timeout"
    assert 1500 <= late["waitedMs"] < 30000  # the file's 1500 ms, not the 500 ms default
    assert results["first"].status_code == 200


async def _until(condition: Any, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(condition):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_two_router_workers_score_real_replicas_without_exceeding_a_cap(
    model: Model, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "home2", args=("--workers", "2"))
    try:
        with Workspace.from_config(server.home) as ws:
            scaler = register_scaler(ws, tmp_path / "m")
            service = Model.deploy(ws, "workers-svc", [scaler], source(tmp_path), fixed(2))
            service.wait_for_deployment()
            key = service.get_keys()[0]

            async def go() -> list[int]:
                limits = httpx.Limits(max_keepalive_connections=0)  # a connection each
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as c:
                    calls = [c.post(service.scoring_uri, json={"x": [i]}) for i in range(40)]
                    return [r.status_code for r in await asyncio.gather(*calls)]

            assert asyncio.run(go()) == [200] * 40
            config = json.loads((server.home / "config.json").read_text())
            admin = {"Authorization": f"Bearer {config['token']}"}
            served = []
            for url in config["routerAdminUrls"]:
                text = httpx.get(f"{url}/metrics", headers=admin).text
                served.append(int(total(text, "modelport_router_requests_total", code="2xx")))
            assert sum(served) == 40 and min(served) > 0  # both workers took connections
    finally:
        server.stop()


ENVIRONMENT = """
    import os

    def init():
        pass

    def run(raw):
        return dict(os.environ)
"""


def test_the_servers_secrets_never_reach_a_replica(tmp_path: Path) -> None:
    secret = "postgres-password-do-not-leak"
    server = ServerProcess(
        tmp_path / "home3", env={"MODELPORT_SECRET_SETTING": secret, "PLAIN_SETTING": "seen"}
    )
    try:
        with Workspace.from_config(server.home) as ws:
            (tmp_path / "m.txt").write_text("x")
            m = Model.register(ws, tmp_path / "m.txt", "env-model")
            folder = tmp_path / "env-src"
            folder.mkdir()
            (folder / "score.py").write_text(textwrap.dedent(ENVIRONMENT))
            config = InferenceConfig(entry_script="score.py", source_directory=folder)
            service = Model.deploy(ws, "env-svc", [m], config, fixed(1, auth_enabled=False))
            service.wait_for_deployment()
            seen = post(service, {}).json()
            assert seen["PLAIN_SETTING"] == "seen"  # the server's ordinary variables pass
            leaked = [
                k
                for k, v in seen.items()
                if k in ("MODELPORT_SECRET_SETTING", "MODELPORT_ROUTER_TOKEN", "MODELPORT_HOME")
                or secret in v
                or server.token in v
            ]
            assert leaked == []
            wait_for(lambda: Webservice(ws, "env-svc").state == "Healthy", what="healthy")
    finally:
        server.stop()
