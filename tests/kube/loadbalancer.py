"""Services of type LoadBalancer, given an address as a cloud provider would give one.

Each such Service gets an address 127.0.200.N, written to
``status.loadBalancer.ingress[0].ip``; every TCP port of the Service listens there and
proxies each connection to a ready endpoint of that port (round robin), as listed by
the Service's EndpointSlices (discovery.k8s.io/v1beta1 on a 1.20 server).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from tests.kube.addresses import AddressPool
from tests.kube.informer import list_and_watch

log = logging.getLogger("node-agent.loadbalancer")
EndpointSlice = create_namespaced_resource(
    "discovery.k8s.io", "v1beta1", "EndpointSlice", "endpointslices"
)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CONNECT_TIMEOUT_S = 5.0
Backend = tuple[str, int]
Key = tuple[str, str]


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


class Balancer:
    """The listeners of one Service at its address, and its ready endpoints by port name."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.listeners: dict[tuple[int, str], asyncio.Server] = {}
        self.backends: dict[str, list[Backend]] = {}
        self._turn = itertools.count()

    async def listen(self, ports: dict[tuple[int, str], str]) -> None:
        """Listen on each (port, protocol) of ``ports`` (valued by port name), and only those."""
        for key in set(self.listeners) - set(ports):
            self.listeners.pop(key).close()
        for (port, protocol), name in ports.items():
            if (port, protocol) in self.listeners or protocol != "TCP":
                continue

            async def serve(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, n: str = name
            ) -> None:
                await self._proxy(n, r, w)

            server = await asyncio.start_server(serve, self.address, port, reuse_address=True)
            self.listeners[(port, protocol)] = server

    def _candidates(self, name: str) -> list[Backend]:
        backends = self.backends.get(name, [])
        if not backends:
            return []
        start = next(self._turn) % len(backends)
        return backends[start:] + backends[:start]

    async def _proxy(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            for host, port in self._candidates(name):
                try:
                    upstream = await asyncio.wait_for(
                        asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
                    )
                except (OSError, TimeoutError):
                    continue
                up_reader, up_writer = upstream
                try:
                    await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
                finally:
                    await _close(up_writer)
                return
        finally:
            await _close(writer)

    def close(self) -> None:
        for server in self.listeners.values():
            server.close()
        self.listeners.clear()


def _ready_backends(slices: list[dict[str, Any]]) -> dict[str, list[Backend]]:
    backends: dict[str, list[Backend]] = {}
    for item in slices:
        for port in item.get("ports") or []:
            name = port.get("name") or ""
            for endpoint in item.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                backends.setdefault(name, []).extend(
                    (address, port["port"]) for address in endpoint.get("addresses") or []
                )
    return backends


class LoadBalancers:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.pool = AddressPool("127.0.200")
        self.balancers: dict[Key, Balancer] = {}
        self.slices: dict[Key, tuple[str, dict[str, Any]]] = {}  # slice -> (service, slice)

    async def watch_services(self) -> None:
        await list_and_watch(self.client, Service, self._services_listed, self._service_event)

    async def watch_endpoint_slices(self) -> None:
        await list_and_watch(self.client, EndpointSlice, self._slices_listed, self._slice_event)

    async def _services_listed(self, services: list[Service]) -> None:
        for key in set(self.balancers) - {_key(s) for s in services}:
            self._remove(key)
        for service in services:
            await self._service_event("ADDED", service)

    async def _service_event(self, kind: str, service: Service) -> None:
        key = _key(service)
        if kind == "DELETED" or (service.spec and service.spec.type) != "LoadBalancer":
            self._remove(key)
        else:
            await self._ensure(key, service)

    async def _slices_listed(self, slices: list[Any]) -> None:
        for gone in set(self.slices) - {_key(s) for s in slices}:
            self._drop_slice(gone)
        for item in slices:
            await self._slice_event("ADDED", item)

    async def _slice_event(self, kind: str, item: Any) -> None:
        key = _key(item)
        service = (item.metadata.labels or {}).get(SERVICE_NAME_LABEL)
        if kind == "DELETED" or not service:
            self._drop_slice(key)
        else:
            self.slices[key] = (service, dict(item))
            self._refresh((key[0], service))

    def _drop_slice(self, key: Key) -> None:
        entry = self.slices.pop(key, None)
        if entry is not None:
            self._refresh((key[0], entry[0]))

    def _refresh(self, service: Key) -> None:
        balancer = self.balancers.get(service)
        if balancer is not None:
            mine = [s for (ns, _), (svc, s) in self.slices.items() if (ns, svc) == service]
            balancer.backends = _ready_backends(mine)

    async def _ensure(self, key: Key, service: Service) -> None:
        balancer = self.balancers.get(key)
        if balancer is None:
            balancer = self.balancers[key] = Balancer(self.pool.acquire())
            self._refresh(key)
        assert service.spec is not None
        ports = {(p.port, p.protocol or "TCP"): p.name or "" for p in service.spec.ports or []}
        try:
            await balancer.listen(ports)
        except OSError as exc:
            log.warning("service %s/%s: cannot listen: %s", *key, exc)
        lb = service.status.loadBalancer if service.status else None
        if [i.ip for i in (lb.ingress if lb else None) or []] != [balancer.address]:
            status = {"loadBalancer": {"ingress": [{"ip": balancer.address}]}}
            await self.client.patch(
                Service.Status,
                key[1],
                {"status": status},
                namespace=key[0],
                patch_type=PatchType.MERGE,
            )

    def _remove(self, key: Key) -> None:
        balancer = self.balancers.pop(key, None)
        if balancer is not None:
            balancer.close()
            self.pool.release(balancer.address)

    def close(self) -> None:
        for key in list(self.balancers):
            self._remove(key)


def _key(obj: Any) -> Key:
    return (obj.metadata.namespace or "", obj.metadata.name or "")
