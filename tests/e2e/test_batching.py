"""A @batched service end to end: the router lets a replica hold a whole batch."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx

from modelport import InferenceConfig, Model, Workspace
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


def test_a_cap_1_service_with_a_batched_run_gets_four_requests_in_one_call(
    ws: Workspace, model: Model, tmp_path: Path
) -> None:
    four_in_one_call(ws, model, tmp_path)


def four_in_one_call(ws: Workspace, model: Model, tmp_path: Path, target: Any = None) -> None:
    """Four requests at once to a cap-1 service whose run() is @batched(4): one call of
    run() answers them all (on ``target``: a compute target, else this machine)."""
    folder = tmp_path / "batched"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(BATCHED))
    ic = InferenceConfig(entry_script="score.py", source_directory=folder)
    # maxConcurrentRequestsPerContainer stays at v1's 1: the batch size sets the slots.
    config = fixed(1, pipelining_enabled=False)
    service = Model.deploy(ws, "grouped", [model], ic, config, deployment_target=target)
    service.wait_for_deployment()
    primary, _ = service.get_keys()
    barrier = threading.Barrier(4)
    answers: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        barrier.wait()
        answers[i] = httpx.post(
            service.scoring_uri,
            json={"x": i},
            headers={"Authorization": f"Bearer {primary}"},
            timeout=30,
        )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[i].status_code for i in range(4)] == [200] * 4
    assert [answers[i].json() for i in range(4)] == [{"x": i, "batch": 4} for i in range(4)]
    service.delete()
