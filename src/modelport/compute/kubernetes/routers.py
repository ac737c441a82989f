"""The router pods of a cluster, from the control plane's side: install them, find
their address, read their counters, and wait until they serve a new policy."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx

from modelport import tracing
from modelport.compute import layout
from modelport.compute.kubernetes import credential, install, names, pod, pods, routing
from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.settings import ClusterSettings
from modelport.compute.shares import merge_stats
from modelport.compute.target import Say
from modelport.errors import (
    ComputeTargetError,
    InvalidInputError,
    ModelportError,
    UnauthorizedError,
)

log = logging.getLogger("modelport.compute")
ROUTES_TIMEOUT_S = 30.0  # for every router to serve a new policy
ADDRESS_REFRESH_S = 30.0
OFF = "off"  # install(tls=OFF): the router serves plain HTTP
CAPTURE = credential.CAPTURE
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Routers:
    def __init__(
        self, name: str, api: KubeAPI, cluster: ClusterSettings, home: Path | None = None
    ) -> None:
        self.name = name  # the compute target's
        self.api = api
        self.cluster = cluster
        self.home = home  # the workspace's: its signing key mints the capture credential
        self._token: str | None = None
        self._capture: credential.Credential | None = None  # as last written
        self._address: str | None = None
        self._balanced = False  # the router Service has a load balancer's address
        self._scheme = "http"  # "https" when the router Service's port is named so
        self._checked = False  # the router Deployment exists
        self._direct = httpx.AsyncClient(timeout=5.0, trust_env=False)

    async def close(self) -> None:
        await self._direct.aclose()

    async def install(self, tls: str | None = None) -> list[str]:
        """Namespace, roles, the router's identity, Deployment and Service; safe to run
        again (server-side apply; the router's token is kept).  ``tls``: a Secret's
        name (HTTPS with its ``tls.crt``/``tls.key``), ``OFF``, or None to keep what
        the installed router does."""
        made = []
        for obj in await self.manifests(tls):
            if obj["kind"] == "Namespace" and await self.api.get(
                "Namespace", self.cluster.namespace
            ):
                made.append(f"Namespace/{self.cluster.namespace}")
                continue  # may exist without our labels, made by whoever attached it
            applied = await self.api.apply(obj)
            made.append(f"{applied['kind']}/{applied['metadata']['name']}")
        await self.refresh_address()
        return made

    async def manifests(self, tls: str | None = None) -> list[dict[str, Any]]:
        """What :meth:`install` applies, for ``kubectl apply -f`` (the router's token is
        the one the cluster has, else a new one)."""
        token = await self.token() or secrets.token_urlsafe(32)
        tls_secret = await self._tls_secret(tls)
        capture = await self._mint_capture()
        telemetry = tracing.pod_settings() if tracing.why_not_in_pods() is None else {}
        reporting = install.Reporting(
            target=self.name,
            capture=capture.token if capture else None,
            telemetry=telemetry,
            requests=layout.request_log_on(),
        )
        return install.install_objects(self.cluster, token, tls_secret, reporting)

    async def _mint_capture(self) -> credential.Credential | None:
        """The capture credential to install: the router Secret's while it is in the
        first half of its life (an install again changes nothing), else a new one."""
        if self.home is None:
            return None
        key = await asyncio.to_thread(credential.signing_key, self.home)
        held = await self._held_capture(key)
        if held is not None and time.time() < held.refresh_at:
            self._capture = held
        else:
            self._capture = self._minted(key)
        return self._capture

    def _minted(self, key: bytes) -> credential.Credential:
        return credential.mint(key, credential.routers_scope(self.name), audience=CAPTURE)

    async def _held_capture(self, key: bytes) -> credential.Credential | None:
        """The router Secret's capture credential, if it is valid for these routers."""
        secret = await self.api.get("Secret", names.ROUTER)
        value = ((secret or {}).get("data") or {}).get(install.CAPTURE_KEY)
        if not value:
            return None
        token = base64.b64decode(value).decode()
        try:
            grant = credential.verify(key, token, audience=CAPTURE)
        except UnauthorizedError:
            return None
        if grant.scope != credential.routers_scope(self.name):
            return None
        halfway = grant.issued_at + (grant.expires_at - grant.issued_at) // 2
        return credential.Credential(token, grant.issued_at, grant.expires_at, halfway)

    async def renew_capture_due(self, now: float) -> None:
        """The capture credential in the router Secret, fresh for a router pod started
        later (running ones renew their own): after half its life.  Nothing while the
        routers are not installed."""
        if self._capture is not None and now < self._capture.refresh_at:
            return
        token = await self.token()
        if token is None or self.home is None:
            return
        key = await asyncio.to_thread(credential.signing_key, self.home)
        held = await self._held_capture(key)
        if held is not None and now < held.refresh_at:
            self._capture = held
            return
        self._capture = self._minted(key)
        await self.api.apply(install.router_secret(self.cluster, token, self._capture.token))

    async def _tls_secret(self, tls: str | None) -> str | None:
        if tls == OFF:
            return None
        if tls is None:
            return install.tls_secret_of(await self.api.get("Deployment", names.ROUTER))
        if not _SECRET_NAME.match(tls):
            raise InvalidInputError(f"{tls!r} is not a Secret's name (DNS-1123 subdomain)")
        secret = await self.api.get("Secret", tls)
        data = (secret or {}).get("data") or {}
        missing = [k for k in ("tls.crt", "tls.key") if not data.get(k)]
        if secret is None or missing:
            why = "does not exist" if secret is None else f"has no {' or '.join(missing)}"
            raise ComputeTargetError(
                f"the TLS Secret {tls!r} in namespace {self.cluster.namespace} {why}",
                hint="create it with `kubectl create secret tls NAME --cert FILE --key FILE` "
                "or let cert-manager issue it",
            )
        return tls

    async def ensure(self, say: Say) -> None:
        """A first deploy to a cluster without modelport's router installs it (as v1's
        attach sets up its front end); credentials that may not say what to run."""
        if self._checked or await self.api.get("Deployment", names.ROUTER):
            self._checked = True
            return
        say(f"installing the router in namespace {self.cluster.namespace}")
        try:
            await self.install()
        except ComputeTargetError as exc:
            say(
                f"warning: the router is not installed and cannot be: {exc.message}; run "
                f"`modelport compute install {self.name}` with credentials that may, or "
                "apply what `--print` gives"
            )
            return
        self._checked = True

    async def token(self) -> str | None:
        if self._token is None:
            secret = await self.api.get("Secret", names.ROUTER)
            value = ((secret or {}).get("data") or {}).get(pod.TOKEN_KEY)
            self._token = base64.b64decode(value).decode() if value else None
        return self._token

    async def follow_address(self) -> None:
        while True:
            try:
                await self.refresh_address()
            except ModelportError as exc:
                log.info("%s: the router's address: %s", self.name, exc.message)
            await asyncio.sleep(ADDRESS_REFRESH_S if self._balanced else 1.0)

    async def refresh_address(self) -> None:
        """The router Service's address: its load balancer's, else its cluster IP."""
        service = await self.api.get("Service", names.ROUTER)
        if service is None:
            return
        ports = (service.get("spec") or {}).get("ports") or [{}]
        self._scheme = "https" if ports[0].get("name") == "https" else "http"
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        self._balanced = bool(ingress)
        if ingress:
            self._address = ingress[0].get("ip") or ingress[0].get("hostname")
        else:
            self._address = (service.get("spec") or {}).get("clusterIP")

    def uri(self) -> str:
        return f"{self._scheme}://{self._address or f'{names.ROUTER}.{self.cluster.namespace}'}"

    def scoring_uri(self, service: str) -> str:
        return f"{self.uri()}/api/v1/service/{service}/score"

    async def _router_pods(self) -> list[tuple[str, str]]:
        """The ready router pods: (name, address)."""
        found = await self.api.list("Pod", names.router_selector(self.cluster.workspace))
        ready = [p for p in found if pods.replica_status(p, 0).ready]
        return [(p["metadata"]["name"], p["status"]["podIP"]) for p in ready]

    async def _router_stats(
        self, routers: list[tuple[str, str]] | None = None
    ) -> list[dict[str, Any] | None] | None:
        """Each ready router pod's counters; None when no router runs."""
        token = await self.token()
        if routers is None:
            routers = await self._router_pods()
        if token is None or not routers:
            return None
        headers = {"authorization": f"Bearer {token}"}
        return list(await asyncio.gather(*(self._stats_of(r, headers) for r in routers)))

    async def _stats_of(
        self, router: tuple[str, str], headers: dict[str, str]
    ) -> dict[str, Any] | None:
        return await self.pod_json(router, install.ROUTER_ADMIN_PORT, "/stats", headers)

    async def pod_json(
        self, pod: tuple[str, str], port: int, path: str, headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """A pod's JSON answer to GET ``path`` (None unless 200): through the API
        server's pod proxy; where it will not proxy to the pod's address (a loopback
        one, as on the test cluster) straight to the pod."""
        name, address = pod
        status, body = await self.api.proxy_get(name, port, path, headers)
        if status == 400 and b"address not allowed" in body:
            try:
                answer = await self._direct.get(f"http://{address}:{port}{path}", headers=headers)
            except httpx.TransportError:
                return None
            status, body = answer.status_code, answer.content
        if status != 200:
            return None
        try:
            found = json.loads(body)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    async def stats(self) -> dict[str, Any] | None:
        """Every router's per-service counters added up."""
        answers = await self._router_stats()
        if not answers or any(a is None for a in answers):
            return None
        return merge_stats([a for a in answers if a is not None])

    async def until_serving(self, wanted: dict[str, str]) -> None:
        """Until every ready router pod serves ``wanted`` (service: backend) and the
        router Service sends to them.  A router just installed is waited for: a deploy
        that returned before its pods were ready handed out an address that refused."""
        deadline = time.monotonic() + ROUTES_TIMEOUT_S
        while time.monotonic() < deadline:
            routers = await self._router_pods()
            answers = await self._router_stats(routers)
            if answers is None and not await self.api.get("Deployment", names.ROUTER):
                log.warning("%s: no router runs; run `modelport compute install`", self.name)
                return
            if (
                answers
                and all(a is not None and _serves(a, wanted) for a in answers)
                and await self._routed_to({address for _, address in routers})
            ):
                return
            await asyncio.sleep(0.2)
        log.warning("%s: routers did not take %s within %.0fs", self.name, wanted, ROUTES_TIMEOUT_S)

    async def _routed_to(self, addresses: set[str]) -> bool:
        """Whether the router Service's EndpointSlices list these router pods as ready."""
        slices = await self.api.list("EndpointSlice", {routing.SERVICE_NAME_LABEL: names.ROUTER})
        ready = {a for s in slices if (e := routing.endpoints_of(s)) for a in e.ready}
        return addresses <= ready


def _serves(stats: dict[str, Any], wanted: dict[str, str]) -> bool:
    services = stats.get("services") or {}
    return all((services.get(s) or {}).get("backend") == b for s, b in wanted.items())
