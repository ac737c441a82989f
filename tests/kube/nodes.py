"""Nodes as a kubelet keeps them: registered with their capacity, a status heartbeat and
a Lease in ``kube-node-lease`` renewed well within its duration, so the node-lifecycle
controller keeps them Ready (and untainted) for as long as the agent runs.
"""

from __future__ import annotations

import asyncio
import platform
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from tests.kube.times import api_time, micro_time

KUBELET_VERSION = "v1.20.2"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
HEARTBEAT_S = 10.0
GPU = "nvidia.com/gpu"
DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}


@dataclass(frozen=True)
class NodeSpec:
    """One emulated Node: ``NAME:cpu=4,memory=16Gi,pods=110,nvidia.com/gpu=4``.

    The Node with index ``i`` gives its pods the addresses ``127.0.{i+1}.N``.
    """

    name: str
    index: int
    capacity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, index: int) -> NodeSpec:
        name, _, resources = text.partition(":")
        capacity = dict(DEFAULT_CAPACITY)
        for item in filter(None, resources.split(",")):
            key, _, value = item.partition("=")
            capacity[GPU if key == "gpu" else key] = value
        return cls(name, index, capacity)

    @property
    def pod_prefix(self) -> str:
        return f"127.0.{self.index + 1}"

    def manifest(self) -> Node:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "kube-harness",
        }
        return Node(metadata=ObjectMeta(name=self.name, labels=labels))

    def status(self, kubelet_port: int, since: str) -> dict[str, Any]:
        beat = api_time()

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": beat,
                "lastTransitionTime": since,
            }

        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": self.name,
                "kernelVersion": platform.release(),
                "osImage": "kube-harness node agent",
                "containerRuntimeVersion": "process://1",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }


class NodeKeeper:
    """Registers one Node and keeps its heartbeat and Lease until cancelled."""

    def __init__(self, client: AsyncClient, node: NodeSpec, kubelet_port: int) -> None:
        self.client = client
        self.node = node
        self.kubelet_port = kubelet_port
        self.since = api_time()

    async def keep(self) -> None:
        uid = await self._register()
        await self._ensure_lease(uid)
        while True:
            await self._beat()
            await asyncio.sleep(HEARTBEAT_S)

    async def _register(self) -> str:
        try:
            created = await self.client.create(self.node.manifest())
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            created = await self.client.get(Node, self.node.name)
        assert created.metadata is not None and created.metadata.uid is not None
        return str(created.metadata.uid)

    async def _ensure_lease(self, node_uid: str) -> None:
        owner = OwnerReference(apiVersion="v1", kind="Node", name=self.node.name, uid=node_uid)
        lease = Lease(
            metadata=ObjectMeta(
                name=self.node.name, namespace=LEASE_NAMESPACE, ownerReferences=[owner]
            ),
            spec=LeaseSpec(holderIdentity=self.node.name, leaseDurationSeconds=LEASE_DURATION_S),
        )
        try:
            await self.client.create(lease)
        except ApiError as exc:
            if exc.status.code != 409:
                raise

    async def _beat(self) -> None:
        await self.client.patch(
            Lease,
            self.node.name,
            {"spec": {"holderIdentity": self.node.name, "renewTime": micro_time()}},
            namespace=LEASE_NAMESPACE,
            patch_type=PatchType.MERGE,
        )
        await self.client.patch(
            Node.Status,
            self.node.name,
            {"status": self.node.status(self.kubelet_port, self.since)},
            patch_type=PatchType.MERGE,
        )
