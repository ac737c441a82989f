"""A @batched service end to end: the router lets a replica hold a whole batch."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx

from modelport import InferenceConfig, Model, Workspace
from tests.conftest import ServerProcess
from tests.e2e.conftest import register_scaler
from tests.e2e.test_services import fixed

BATCHED = """
    import json
    from modelport import batched

    def init():
        pass

    @batched(max_batch_size=4, max_latency_ms=2000)
    def run(inputs):
        return [{"x": json.loads(i)["x"], "batch": len(inputs)} for i in inputs]
"""


def test_with_two_router_workers_each_may_hand_the_replica_a_whole_batch(tmp_path: Path) -> None:
    """Connections spread over two router workers at random: a worker that gets three
    of the four requests sends all three (holding only its share of the replica's four
    slots, it would queue one while the batch waited for it, till a 503)."""
    server = ServerProcess(tmp_path / "home2", args=("--workers", "2"))
    try:
        with Workspace.from_config(server.home) as ws:
            model = register_scaler(ws, tmp_path / "m")
            four_in_one_call(ws, model, tmp_path, rounds=4)
    finally:
        server.stop()


def four_in_one_call(
    ws: Workspace, model: Model, tmp_path: Path, target: Any = None, rounds: int = 1
) -> None:
    """Four requests at once to a cap-1 service whose run() is @batched(4): one call of
    run() answers them all (on ``target``: a compute target, else this machine), in
    each of ``rounds`` rounds."""
    folder = tmp_path / "batched"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(BATCHED))
    ic = InferenceConfig(entry_script="score.py", source_directory=folder)
    # maxConcurrentRequestsPerContainer stays at v1's 1: the batch size sets the slots.
    config = fixed(1, pipelining_enabled=False)
    service = Model.deploy(ws, "grouped", [model], ic, config, deployment_target=target)
    service.wait_for_deployment()
    primary, _ = service.get_keys()
    for _ in range(rounds):
        answers = four_at_once(service.scoring_uri, primary)
        assert [a.status_code for a in answers] == [200] * 4, answers[0].text
        assert [a.json() for a in answers] == [{"x": i, "batch": 4} for i in range(4)]
    service.delete()


def four_at_once(uri: str, key: str) -> list[httpx.Response]:
    """Four requests with {"x": i}, each on a connection of its own, sent together."""
    barrier = threading.Barrier(4)
    answers: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        barrier.wait()
        headers = {"Authorization": f"Bearer {key}"}
        answers[i] = httpx.post(uri, json={"x": i}, headers=headers, timeout=30)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [answers[i] for i in range(4)]
