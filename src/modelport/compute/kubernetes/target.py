"""The Kubernetes compute target: a service generation is a Deployment of pods.

Per service a ConfigMap (named after it) carries the route policy and owns every
object of the service, so deleting it lets the cluster's garbage collector remove
the rest.  Per generation: a staging Secret, a headless Service (whose
EndpointSlices tell the routers which replicas are ready), a PodDisruptionBudget
and the Deployment.  The replica count is changed through the ``scale``
subresource only: never an HPA.  Everything is found again by label, so a
restarted control plane adopts what runs instead of creating it twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modelport.compute import plan
from modelport.compute.kubernetes import credential, install, manifests, names, pod, pods, routing
from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.release import Release
from modelport.compute.kubernetes.settings import DEFAULT_IMAGE, ClusterSettings
from modelport.compute.shares import merge_stats
from modelport.compute.target import Found, Generation, OnChange, ReplicaState, ReplicaStatus, Say
from modelport.errors import ComputeTargetError, ModelportError, ReplicasFailedError
from modelport.spec.names import parse_model_id
from modelport.spec.support import Target
from modelport.store.services import ServiceRecord
from modelport.store.snapshots import SnapshotStore

log = logging.getLogger("modelport.compute")
SPEC_ANNOTATION = "modelport.io/spec"  # the service spec a generation was made from
GONE_TIMEOUT_S = 120.0
ROUTES_TIMEOUT_S = (
    30.0  # for every router to serve a new policy  # waiting for a stopped generation's pods to end
)
RETRY_S = 1.0
ADDRESS_REFRESH_S = 30.0
CREDENTIAL_CHECK_S = 60.0


@dataclass(frozen=True)
class Prepared:
    release: Release
    minted: credential.Credential
    scope: credential.Scope
    say: Say


class KubeGeneration:
    """One generation's pods, followed through a watch on their labels."""

    def __init__(
        self,
        target: KubernetesTarget,
        release: Release,
        on_change: OnChange,
        desired: int | None = None,
    ) -> None:
        self.target = target
        self.release = release
        self.generation = release.generation
        self.on_change = on_change
        self.desired = desired if desired is not None else release.plan.replicas
        self.name = names.generation_name(release.service, release.generation)
        self._pods: dict[str, dict[str, Any]] = {}
        self._ever_ready: set[str] = set()
        self._changed = asyncio.Event()
        self._listed = asyncio.Event()  # the pods have been listed once
        self._error: str | None = None  # creating the objects failed
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"<KubeGeneration {self.name} desired={self.desired} pods={len(self._pods)}>"

    # -- following the pods --------------------------------------------------------
    def follow(self, create: Callable[[], Awaitable[None]] | None = None) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(create))

    async def _follow(self, create: Callable[[], Awaitable[None]] | None) -> None:
        if create is not None:
            try:
                await create()
            except ModelportError as exc:
                self._error = exc.message
                self._notify()
                return
        selector = names.generation_selector(self.release.service, self.generation)
        api = self.target.api
        while not self._stopped:
            began = time.monotonic()
            try:  # level-triggered: list, then watch from there; again when it ends
                items, version = await api.list_at("Pod", selector)
                self._pods = {}
                for pod in items:
                    self._seen("ADDED", pod)
                self._listed.set()
                self._notify()
                async for kind, pod in api.watch("Pod", selector, version):
                    self._seen(kind, pod)
            except ModelportError as exc:
                log.info("%s: watching pods: %s; listing again", self.name, exc.message)
            if time.monotonic() - began < RETRY_S:  # a watch that ends at once: no spinning
                await asyncio.sleep(RETRY_S)

    async def known(self, timeout_s: float = 10.0) -> None:
        """Until the pods have been listed once (an adopted generation starts unknown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listed.wait(), timeout_s)

    def _seen(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            self._pods.pop(name, None)
        else:
            self._pods[name] = pod
            if pods.replica_status(pod, 0).ready:
                self._ever_ready.add(name)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self.on_change()

    # -- Generation ------------------------------------------------------------------
    def replicas(self) -> Sequence[ReplicaStatus]:
        ordered = pods.ordered(
            [p for p in self._pods.values() if not p["metadata"].get("deletionTimestamp")]
        )
        statuses = [
            pods.replica_status(p, i, p["metadata"]["name"] in self._ever_ready)
            for i, p in enumerate(ordered)
        ]
        missing = max(0, self.desired - len(statuses))
        error = self._error
        state = ReplicaState.FAILED if error else ReplicaState.STARTING
        start = len(statuses)
        statuses += [ReplicaStatus(start + i, state, "", 0, error=error) for i in range(missing)]
        return statuses[: max(self.desired, 0)] if not self._error else statuses

    def scale_to(self, count: int) -> Callable[[], Awaitable[None]]:
        changed = count != self.desired
        self.desired = count
        if changed and self._task is not None:
            self.target.in_background(self.target.api.scale(self.name, count))

        async def finish() -> None:
            # The cluster ends the surplus pods: terminating, they leave the
            # EndpointSlices (and so the routers) first, then drain on SIGTERM.
            return None

        return finish

    async def wait_ready(self) -> None:
        while True:
            statuses = self.replicas()
            failed = [r for r in statuses if r.state == ReplicaState.FAILED]
            if failed:
                raise ReplicasFailedError(failed[0].error or "a replica failed to start")
            if statuses and all(r.ready for r in statuses) and len(statuses) >= self.desired:
                return
            self._changed.clear()
            # Unschedulable pods fail after a time: look again even without news.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 5.0)

    async def let_go(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self, drain_s: float | None = None) -> None:
        await self.let_go()
        await self.target.delete_generation(self.release.service, self.generation)

    def pod_names(self) -> list[str]:
        return [p["metadata"]["name"] for p in pods.ordered(list(self._pods.values()))]


class KubernetesTarget:
    kind = "kubernetes"
    keeps_running = True  # pods serve on while the control plane is down or stopped

    def __init__(
        self,
        name: str,
        api: KubeAPI,
        cluster: ClusterSettings,
        home: Path,
        snapshots: SnapshotStore,
    ) -> None:
        self.name = name
        self.api = api
        self.cluster = cluster
        self.home = home
        self.snapshots = snapshots
        self.capabilities = Target(name, namespace=cluster.namespace, gpus=True)
        self._background: set[asyncio.Task[Any]] = set()
        self._policies: dict[str, dict[str, Any]] = {}  # as last written
        self._router_token: str | None = None
        self._address: str | None = None
        self._discovered = False
        self._router_checked = False  # the router Deployment exists
        # Generations whose pods may stage files: their release, scope and credential.
        self._staged: dict[str, tuple[Release, credential.Scope, credential.Credential | None]] = {}
        self._balanced = False  # the router Service has a load balancer's address
        self._direct = httpx.AsyncClient(timeout=5.0, trust_env=False)

    @classmethod
    def open(
        cls,
        name: str,
        kubeconfig: str,
        context: str,
        namespace: str,
        workspace: str,
        stage_url: str,
        home: Path,
        snapshots: SnapshotStore,
        image: str | None = None,
        router_replicas: int = 1,
    ) -> KubernetesTarget:
        api = KubeAPI(kubeconfig, context, namespace)
        cluster = ClusterSettings(
            namespace=namespace,
            workspace=workspace,
            stage_url=stage_url,
            image=image or DEFAULT_IMAGE,
            router_replicas=router_replicas,
        )
        return cls(name, api, cluster, home, snapshots)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self._direct.aclose()
        await self.api.aclose()

    async def discover(self) -> None:
        """What the server serves: PodDisruptionBudgets are policy/v1 from 1.21 on."""
        if not self._discovered:
            version = await self.api.served_version("policy", ("v1", "v1beta1"))
            self.cluster = dataclasses.replace(self.cluster, pdb_api_version=version)
            self._discovered = True

    def __repr__(self) -> str:
        return f"<KubernetesTarget {self.name} {self.api!r}>"

    def in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: %s", self.name, task.exception())

    def probe_capabilities(self) -> None:
        return None

    def check_deploy(self, the_plan: plan.DeploymentPlan, current: Generation | None) -> None:
        return None

    # -- a new generation ------------------------------------------------------------
    def prepare(
        self,
        record: ServiceRecord,
        the_plan: plan.DeploymentPlan,
        current: Generation | None,
        say: Say,
    ) -> Prepared:
        """The release and its staging credential (blocking: reads the signing key)."""
        inference = plan.inference_config(record.spec)
        models = _model_ids(record.spec)
        basename, _ = self.snapshots.get(record.spec["snapshot"])
        release = Release(
            service=record.name,
            generation=record.generation,
            plan=the_plan,
            entry_script=inference.entry_script,
            source_basename=basename,
            models=models,
            variables=plan.replica_environment(the_plan, record.name),
            environment=plan.environment(record.spec),
        )
        scope = _scope(record.name, record.generation, record.spec)
        minted = credential.mint(credential.signing_key(self.home), scope)
        say(f"creating the Deployment {names.generation_name(record.name, record.generation)}")
        return Prepared(release, minted, scope, say)

    def discard(self, service: str, generation: int) -> None:
        return None  # nothing was made before launch

    def launch(
        self, prepared: Prepared, on_change: OnChange, owner: dict[str, Any]
    ) -> KubeGeneration:
        made = KubeGeneration(self, prepared.release, on_change)
        self._staged[made.name] = (prepared.release, prepared.scope, prepared.minted)

        async def create() -> None:
            await self.discover()
            await self.ensure_router(prepared.say)
            uid = await self.ensure_service(prepared.release.service)
            token = prepared.minted.token
            objects = manifests.generation_objects(prepared.release, self.cluster, uid, token)
            for obj in objects:
                if obj["kind"] == "Deployment":
                    obj["spec"]["replicas"] = made.desired
                    obj["metadata"].setdefault("annotations", {})[SPEC_ANNOTATION] = json.dumps(
                        owner["spec"], sort_keys=True
                    )
                await self.api.apply(obj)
            await self._warn_of_autoscalers(made.name, prepared.say)

        made.follow(create)
        return made

    async def _warn_of_autoscalers(self, deployment: str, say: Say) -> None:
        """v1 forbids an HPA on its deployments: modelport's autoscaler owns the count."""
        for hpa in await self.api.list("HorizontalPodAutoscaler", {}):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") == "Deployment" and target.get("name") == deployment:
                name = hpa["metadata"]["name"]
                say(
                    f"warning: the HorizontalPodAutoscaler {name} targets {deployment}; "
                    "modelport scales it itself, so the two will fight: delete the HPA"
                )

    async def forget_others(self, services: set[str]) -> list[str]:
        """Remove what belongs to services this workspace no longer has (deleted while a
        control plane was cut short); returns their names."""
        labels = names.workspace_labels(self.cluster.workspace)
        owners = await self.api.list("ConfigMap", labels)
        gone = sorted(
            {
                c["metadata"]["name"]
                for c in owners
                if names.SERVICE in (c["metadata"].get("labels") or {})
            }
            - services
        )
        for service in gone:
            log.info("%s: removing what is left of the deleted service %s", self.name, service)
            await self.clean_up(service)
        return gone

    async def ensure_service(self, service: str) -> str:
        """The service's ConfigMap (its owner object), made if missing; returns its uid."""
        found = await self.api.get("ConfigMap", service)
        if found is None:
            labels = names.service_labels(self.cluster.workspace, service)
            found = await self.api.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": manifests.metadata(service, self.cluster.namespace, labels),
                    "data": {},
                }
            )
        return str(found["metadata"]["uid"])

    async def delete_generation(self, service: str, generation: int) -> None:
        name = names.generation_name(service, generation)
        self._staged.pop(name, None)
        for kind in ("Deployment", "Service", "PodDisruptionBudget"):
            await self.api.delete(kind, name)
        await self.api.delete("Secret", names.staging_secret_name(service, generation))
        await self._until_no_pods(names.generation_selector(service, generation))

    async def _until_no_pods(self, selector: dict[str, str]) -> None:
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            if not await self.api.list("Pod", selector):
                return
            await asyncio.sleep(0.5)
        log.warning("pods %s still there after %.0fs", selector, GONE_TIMEOUT_S)

    # -- what runs already -----------------------------------------------------------
    async def adopt(self, service: str, on_change: OnChange) -> list[Found]:
        labels = names.service_labels(self.cluster.workspace, service)
        owner = await self.api.get("ConfigMap", service)
        policy = routing.policy_of(owner) if owner is not None else None
        serving = (policy or {}).get("backend")
        found = []
        for deployment in await self.api.list("Deployment", labels):
            meta = deployment["metadata"]
            text = (meta.get("annotations") or {}).get(SPEC_ANNOTATION)
            generation = (meta.get("labels") or {}).get(names.GENERATION)
            if not text or not generation:
                continue
            spec = json.loads(text)
            the_plan = plan.plan(spec)
            release = Release(
                service=service,
                generation=int(generation),
                plan=the_plan,
                entry_script=plan.inference_config(spec).entry_script,
                source_basename="",
                models=_model_ids(spec),
                variables=plan.replica_environment(the_plan, service),
                environment=plan.environment(spec),
            )
            made = KubeGeneration(self, release, on_change, deployment["spec"].get("replicas"))
            scope = _scope(service, int(generation), spec)
            self._staged[made.name] = (release, scope, None)  # refreshed at the next look
            made.follow()
            await made.known()
            found.append(Found(made, spec, serving=meta["name"] == serving))
        return sorted(found, key=lambda f: f.generation.generation)

    async def clean_up(self, service: str) -> None:
        """The owner ConfigMap goes (the cluster removes what it owns); then whatever is
        left by label, and until no pod of the service remains."""
        await self.api.delete("ConfigMap", service)
        labels = names.service_labels(self.cluster.workspace, service)
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "Secret"):
            for obj in await self.api.list(kind, labels):
                await self.api.delete(kind, obj["metadata"]["name"])
        await self._until_no_pods(labels)

    async def logs(self, service: str, current: Generation | None, num_lines: int) -> str:
        if not isinstance(current, KubeGeneration):
            return ""
        parts = []
        pod_names = current.pod_names()
        per_pod = max(1, num_lines // max(1, len(pod_names)))
        for name in pod_names:
            text = await self.api.logs(name, pods.SCORE_CONTAINER, per_pod)
            parts.append(f"=== {name} ===\n{text}")
        return "\n".join(parts)

    # -- the cluster side: router, routes, counters -----------------------------------
    async def install(self) -> list[str]:
        """Namespace, roles, the router's identity, Deployment and Service; safe to run
        again (server-side apply; the router's token is kept)."""
        made = []
        for obj in await self.manifests():
            if obj["kind"] == "Namespace" and await self.api.get(
                "Namespace", self.cluster.namespace
            ):
                made.append(f"Namespace/{self.cluster.namespace}")
                continue  # may exist without our labels, made by whoever attached it
            applied = await self.api.apply(obj)
            made.append(f"{applied['kind']}/{applied['metadata']['name']}")
        await self.refresh_address()
        return made

    async def manifests(self) -> list[dict[str, Any]]:
        """What :meth:`install` applies, for ``kubectl apply -f`` (the router's token is
        the one the cluster has, else a new one)."""
        token = await self.router_token() or secrets.token_urlsafe(32)
        return install.install_objects(self.cluster, token)

    async def ensure_router(self, say: Say) -> None:
        """A first deploy to a cluster without modelport's router installs it (as v1's
        attach sets up its front end); credentials that may not say what to run."""
        if self._router_checked or await self.api.get("Deployment", names.ROUTER):
            self._router_checked = True
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
        self._router_checked = True

    async def router_token(self) -> str | None:
        if self._router_token is None:
            secret = await self.api.get("Secret", names.ROUTER)
            value = ((secret or {}).get("data") or {}).get(pod.TOKEN_KEY)
            self._router_token = base64.b64decode(value).decode() if value else None
        return self._router_token

    def start(self) -> None:
        """Follow the router Service's address (a load balancer may take a while), and
        keep the staging credentials of running generations fresh."""
        self.in_background(self._follow_address())
        self.in_background(self._keep_credentials())

    async def _keep_credentials(self) -> None:
        """A pod started later (a new node, an eviction) stages its files again: its
        generation's credential is renewed before it expires."""
        while True:
            await self.renew_due(time.time())
            await asyncio.sleep(CREDENTIAL_CHECK_S)

    async def renew_due(self, now: float) -> None:
        for name, (release, scope, held) in list(self._staged.items()):
            if held is not None and now < held.refresh_at:
                continue
            try:
                await self._renew(name, release, scope)
            except ModelportError as exc:
                log.warning("%s: renewing %s's credential: %s", self.name, name, exc.message)

    async def _renew(self, name: str, release: Release, scope: credential.Scope) -> None:
        key = await asyncio.to_thread(credential.signing_key, self.home)
        minted = credential.mint(key, scope)
        owner = await self.api.get("ConfigMap", release.service)
        if owner is None or name not in self._staged:
            return
        uid = str(owner["metadata"]["uid"])
        await self.api.apply(manifests.staging_secret(release, self.cluster, uid, minted.token))
        self._staged[name] = (release, scope, minted)

    async def _follow_address(self) -> None:
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
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        self._balanced = bool(ingress)
        if ingress:
            self._address = ingress[0].get("ip") or ingress[0].get("hostname")
        else:
            self._address = (service.get("spec") or {}).get("clusterIP")

    def router_uri(self) -> str:
        return f"http://{self._address or f'{names.ROUTER}.{self.cluster.namespace}'}"

    def scoring_uri(self, service: str) -> str:
        return f"{self.router_uri()}/api/v1/service/{service}/score"

    async def _router_pods(self) -> list[tuple[str, str]]:
        """The ready router pods: (name, address)."""
        found = await self.api.list("Pod", names.router_selector(self.cluster.workspace))
        ready = [p for p in found if pods.replica_status(p, 0).ready]
        return [(p["metadata"]["name"], p["status"]["podIP"]) for p in ready]

    async def _router_stats(self) -> list[dict[str, Any] | None] | None:
        """Each ready router pod's counters; None when no router runs."""
        token = await self.router_token()
        routers = await self._router_pods()
        if token is None or not routers:
            return None
        headers = {"authorization": f"Bearer {token}"}
        return list(await asyncio.gather(*(self._stats_of(r, headers) for r in routers)))

    async def _stats_of(
        self, router: tuple[str, str], headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """Through the API server's pod proxy; where it will not proxy to the pod's
        address (a loopback one, as on the test cluster) straight to the pod."""
        name, address = router
        port = install.ROUTER_ADMIN_PORT
        status, body = await self.api.proxy_get(name, port, "/stats", headers)
        if status == 400 and b"address not allowed" in body:
            try:
                answer = await self._direct.get(f"http://{address}:{port}/stats", headers=headers)
            except httpx.TransportError:
                return None
            status, body = answer.status_code, answer.content
        return json.loads(body) if status == 200 else None

    async def stats(self) -> dict[str, Any] | None:
        """Every router's per-service counters added up."""
        answers = await self._router_stats()
        if not answers or any(a is None for a in answers):
            return None
        return merge_stats([a for a in answers if a is not None])

    async def publish(self, routes: dict[str, dict[str, Any]]) -> None:
        """Each service's route policy into its ConfigMap, where the routers read it; then
        until every router serves the generation it names (so an old one may be drained)."""
        waiting = {}
        for service, route in routes.items():
            policy = {k: v for k, v in route.items() if k not in ("replicas", "exitFiles")}
            generation = policy.pop("generation", None)
            if generation:
                policy["backend"] = names.generation_name(service, int(generation))
            if self._policies.get(service) == policy:
                continue
            await self.ensure_service(service)
            text = json.dumps(policy, sort_keys=True)
            await self.api.patch_data("ConfigMap", service, {routing.POLICY_KEY: text})
            self._policies[service] = policy
            if policy.get("backend"):
                waiting[service] = policy["backend"]
        for gone in set(self._policies) - set(routes):
            del self._policies[gone]
        if waiting:
            await self._until_routers_serve(waiting)

    async def _until_routers_serve(self, wanted: dict[str, str]) -> None:
        deadline = time.monotonic() + ROUTES_TIMEOUT_S
        while time.monotonic() < deadline:
            answers = await self._router_stats()
            if answers is None:
                log.warning("%s: no router runs; run `modelport compute install`", self.name)
                return
            if all(a is not None and _serves(a, wanted) for a in answers):
                return
            await asyncio.sleep(0.2)
        log.warning("%s: routers did not take %s within %.0fs", self.name, wanted, ROUTES_TIMEOUT_S)


def _service_of(obj: dict[str, Any]) -> str | None:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels.get(names.SERVICE)


def _serves(stats: dict[str, Any], wanted: dict[str, str]) -> bool:
    services = stats.get("services") or {}
    return all((services.get(s) or {}).get("backend") == b for s, b in wanted.items())


def _scope(service: str, generation: int, spec: dict[str, Any]) -> credential.Scope:
    models = tuple(f"{n}:{v}" for n, v in _model_ids(spec))
    return credential.Scope(service, generation, spec["snapshot"], models)


def _model_ids(spec: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The service's models as (name, version); a stored spec always names versions."""
    ids = []
    for model in spec["models"]:
        name, version = parse_model_id(model)
        assert version is not None
        ids.append((name, version))
    return tuple(ids)
