"""An attached test cluster, as the end-to-end tests use it: a namespace of its own,
attached through the SDK and installed (the router runs in it), deleted afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lightkube import Client
from lightkube.resources.core_v1 import Namespace

from modelport import AksCompute, ComputeTarget, Workspace
from tests.conftest import ServerProcess


@dataclass
class Attached:
    target: AksCompute
    namespace: str
    client: Client


@contextmanager
def attached(server: ServerProcess, cluster: Any, purpose: str | None = None) -> Iterator[Attached]:
    namespace = f"mp-{secrets.token_hex(4)}"
    client = cluster.client()
    with Workspace.from_config(server.home) as ws:
        config = AksCompute.attach_configuration(
            kubeconfig=cluster.kubeconfig, namespace=namespace, cluster_purpose=purpose
        )
        target = ComputeTarget.attach(ws, "myaks", config)
        target.wait_for_completion()
        installed = target.install()
    assert "Deployment/modelport-router" in installed["applied"]
    try:
        yield Attached(target, namespace, client)
    finally:
        client.delete(Namespace, namespace)
