"""``python -m modelport.compute.kubernetes.routes``: the route-sync container of a router pod.

It watches the namespace's service ConfigMaps (route policies; and the workspace's
token verification keys, ``names.TOKENS``) and EndpointSlices
(ready replicas, and which router pods run) through the Kubernetes API, and pushes the
table they make to the router beside it (``PUT /routes`` on its admin port), also
writing it where a restarted router reads it at once.  The control plane never pushes
pod lists.  With several router pods each holds its share of every replica's slots
(``compute/shares.py``), so a replica never gets more than its cap from all routers
together; a router without slots for a service forwards to one that has them.

Environment (set by the router Deployment): ``MODELPORT_NAMESPACE``,
``MODELPORT_WORKSPACE``, ``MODELPORT_ROUTER_ADMIN_URL``, ``MODELPORT_ROUTER_TOKEN``,
``MODELPORT_ROUTER_TABLE_DIR``; credentials from the pod's service account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from modelport.compute import shares
from modelport.compute.kubernetes import names, routing
from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.install import ROUTER_ADMIN_PORT as ADMIN_PORT
from modelport.errors import ModelportError

log = logging.getLogger("modelport.routes")
SETTLE_S = 0.05  # a burst of watch events makes one push
RETRY_S = 1.0


class RouteSync:
    def __init__(
        self, api: KubeAPI, workspace: str, admin_url: str, token: str, folder: Path, address: str
    ):
        self.api = api
        self.address = address  # this pod's: its place among the routers
        self.workspace = workspace
        self.admin_url = admin_url
        self.token = token
        self.folder = folder
        self.policies: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, Any] | None = None  # issuer and public keys, for token auth
        self.slices: dict[str, routing.Endpoints] = {}
        self.revision = 0
        self.changed = asyncio.Event()
        self.synced = {"ConfigMap": False, "EndpointSlice": False}

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            watchers = [
                asyncio.create_task(
                    self._watch("ConfigMap", names.workspace_labels(self.workspace))
                ),
                asyncio.create_task(self._watch("EndpointSlice", {})),
            ]
            try:
                await self._push_loop(client)
            finally:
                for task in watchers:
                    task.cancel()

    async def _watch(self, kind: str, labels: dict[str, str]) -> None:
        while True:
            began = time.monotonic()
            try:  # list, then watch from there; again when the watch ends
                items, version = await self.api.list_at(kind, labels)
                (self.policies if kind == "ConfigMap" else self.slices).clear()
                for obj in items:
                    self._seen(kind, "ADDED", obj)
                self.synced[kind] = True
                self.changed.set()
                async for event, obj in self.api.watch(kind, labels, version):
                    self._seen(kind, event, obj)
            except ModelportError as exc:
                log.warning("watching %s: %s; again", kind, exc.message)
            if time.monotonic() - began < RETRY_S:  # a watch that ends at once: no spinning
                await asyncio.sleep(RETRY_S)

    def _seen(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "ConfigMap" and name == names.TOKENS:
            self.tokens = None if event == "DELETED" else routing.tokens_of(obj)
        elif kind == "ConfigMap":
            policy = None if event == "DELETED" else routing.policy_of(obj)
            if policy is None:
                self.policies.pop(name, None)
            else:
                self.policies[name] = policy
        else:
            found = None if event == "DELETED" else routing.endpoints_of(obj)
            if found is None:
                self.slices.pop(name, None)
            else:
                self.slices[name] = found
        self.changed.set()

    async def _push_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            await self.changed.wait()
            await asyncio.sleep(SETTLE_S)
            self.changed.clear()
            if not all(self.synced.values()):
                continue  # a table from half the facts would drop services
            # Revisions only grow, also across restarts of this container.
            self.revision = max(self.revision + 1, int(time.time() * 1000))
            services = routing.services_table(self.policies, self.slices.values())
            routers = routing.routers(self.slices.values(), names.ROUTER, self.address)
            table: dict[str, Any] = {"revision": self.revision, "services": services}
            if self.tokens:
                table["tokens"] = self.tokens
            doc = shares.worker_table(
                table,
                routers.index(self.address),
                [(a, ADMIN_PORT) for a in routers],
            )
            self._save(doc)
            await self._push(client, doc)

    def _save(self, doc: dict[str, Any]) -> None:
        path = self.folder / "table-0.json"
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(doc))
        partial.replace(path)

    async def _push(self, client: httpx.AsyncClient, doc: dict[str, Any]) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        while not self.changed.is_set():
            try:
                response = await client.put(f"{self.admin_url}/routes", json=doc, headers=headers)
                if response.status_code == 200:
                    return
                log.warning("the router refused the table: %s", response.text)
            except httpx.TransportError as exc:
                log.info("the router is not answering yet (%s)", exc)
            await asyncio.sleep(RETRY_S / 4)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    for chatty in ("httpx", "httpx2"):  # a line per request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    env = os.environ
    try:
        namespace = env["MODELPORT_NAMESPACE"]
        workspace = env["MODELPORT_WORKSPACE"]
        admin_url = env["MODELPORT_ROUTER_ADMIN_URL"]
        token = env.pop("MODELPORT_ROUTER_TOKEN")
        folder = Path(env["MODELPORT_ROUTER_TABLE_DIR"])
        address = env["POD_IP"]
    except KeyError as exc:
        print(f"route-sync: {exc.args[0]} is not set", file=sys.stderr)
        return 2

    async def go() -> None:
        async with KubeAPI.in_cluster(namespace) as api:
            await RouteSync(api, workspace, admin_url, token, folder, address).run()

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
