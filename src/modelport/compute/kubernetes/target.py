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
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport import tracing
from modelport.compute import plan
from modelport.compute.kubernetes import (
    credential,
    manifests,
    names,
    pod,
    podlogs,
    pods,
    routing,
)
from modelport.compute.kubernetes.api import KubeAPI
from modelport.compute.kubernetes.generation import KubeGeneration
from modelport.compute.kubernetes.release import Release
from modelport.compute.kubernetes.routers import Routers
from modelport.compute.kubernetes.settings import DEFAULT_IMAGE, ClusterSettings
from modelport.compute.target import Found, Generation, OnChange, Say
from modelport.errors import ModelportError
from modelport.spec.names import parse_model_id
from modelport.spec.support import Target
from modelport.store.services import ServiceRecord
from modelport.store.snapshots import SnapshotStore

log = logging.getLogger("modelport.compute")
SPEC_ANNOTATION = "modelport.io/spec"  # the service spec a generation was made from
GONE_TIMEOUT_S = 120.0  # waiting for a stopped generation's pods to end
CREDENTIAL_CHECK_S = 60.0


@dataclass(frozen=True)
class Prepared:
    release: Release
    minted: credential.Credential
    scope: credential.Scope
    say: Say
    model_data: credential.Credential | None = None  # when the service collects


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
        self.capabilities = Target(
            name, namespace=cluster.namespace, gpus=True, traces=tracing.why_not_in_pods()
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.routers = Routers(name, api, cluster, home)
        self._policies: dict[str, dict[str, Any]] = {}  # as last written
        self._tokens: dict[str, Any] | None = None  # the token keys as last written
        self._discovered = False
        # Generations whose pods may stage files: their release, scope and credential.
        self._staged: dict[str, tuple[Release, credential.Scope, credential.Credential | None]] = {}

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
        stage_ca: str | None = None,
    ) -> KubernetesTarget:
        api = KubeAPI(kubeconfig, context, namespace)
        cluster = ClusterSettings(
            namespace=namespace,
            workspace=workspace,
            stage_url=stage_url,
            image=image or DEFAULT_IMAGE,
            router_replicas=router_replicas,
            stage_ca=stage_ca,
        )
        return cls(name, api, cluster, home, snapshots)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.routers.close()
        await self.api.aclose()

    async def discover(self) -> None:
        """What the server serves: PodDisruptionBudgets are policy/v1 from 1.21 on."""
        if not self._discovered:
            version = await self.api.served_version("policy", ("v1", "v1beta1"))
            self.cluster = dataclasses.replace(self.cluster, pdb_api_version=version)
            self.routers.cluster = self.cluster
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

    def replica_key(self, service: str, the_plan: plan.DeploymentPlan) -> str | None:
        return None  # each generation's NetworkPolicy admits only the router pods

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
            variables={
                **plan.replica_environment(the_plan, record.name),
                **self._telemetry(the_plan),
            },
            environment=plan.environment(record.spec),
        )
        scope = _scope(record.name, record.generation, record.spec)
        minted, model_data = _mint(credential.signing_key(self.home), scope, release)
        say(f"creating the Deployment {names.generation_name(record.name, record.generation)}")
        return Prepared(release, minted, scope, say, model_data)

    def _telemetry(self, the_plan: plan.DeploymentPlan) -> dict[str, str]:
        """Where a traced service's replicas send their spans: where the control plane
        does (deploy warns when they cannot)."""
        if not the_plan.tracing or self.capabilities.traces is not None:
            return {}
        return tracing.pod_settings()

    def discard(self, service: str, generation: int) -> None:
        return None  # nothing was made before launch

    def launch(
        self, prepared: Prepared, on_change: OnChange, owner: dict[str, Any]
    ) -> KubeGeneration:
        made = KubeGeneration(self, prepared.release, on_change)
        self._staged[made.name] = (prepared.release, prepared.scope, prepared.minted)

        async def create() -> None:
            await self.discover()
            await self.routers.ensure(prepared.say)
            uid = await self.ensure_service(prepared.release.service)
            token = prepared.minted.token
            model_data = prepared.model_data.token if prepared.model_data else None
            objects = manifests.generation_objects(
                prepared.release, self.cluster, uid, token, model_data
            )
            for obj in objects:
                if obj["kind"] == "Deployment":
                    obj["spec"]["replicas"] = made.created_with = made.desired
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
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):
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
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Secret"):
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

    async def pod_logs(
        self,
        service: str,
        current: Generation | None,
        tail: int,
        since_s: int | None,
        follow: bool,
        gone: podlogs.Gone,
    ) -> AsyncIterator[bytes]:
        """The current generation's replica logs, each line after its pod's name."""
        if not isinstance(current, KubeGeneration):
            return
        if not follow:
            text = await podlogs.read(self.api, current.pod_names(), tail, since_s)
            if text:
                yield text.encode() + b"\n"
            return
        async for line in podlogs.follow(self.api, current.pod_names, tail, since_s, gone):
            yield line

    async def replica_stats(self, service: str, current: Generation | None) -> list[dict[str, Any]]:
        """Each pod's replica counters (``GET /stats`` on its health port), of those
        that answer."""
        if not isinstance(current, KubeGeneration):
            return []
        asks = [
            self.routers.pod_json(found, pod.HEALTH_PORT, "/stats", {})
            for found in current.pod_addresses()
        ]
        answers = await asyncio.gather(*asks, return_exceptions=True)
        return [a for a in answers if isinstance(a, dict) and "runCounts" in a]

    # -- the cluster side: router, routes, counters -----------------------------------
    def start(self) -> None:
        """Follow the router Service's address (a load balancer may take a while), and
        keep the staging credentials of running generations fresh."""
        self.in_background(self.routers.follow_address())
        self.in_background(self._keep_credentials())

    async def _keep_credentials(self) -> None:
        """A pod started later (a new node, an eviction) stages its files again: its
        generation's credential is renewed before it expires."""
        while True:
            await self.renew_due(time.time())
            await asyncio.sleep(CREDENTIAL_CHECK_S)

    async def renew_due(self, now: float) -> None:
        try:
            await self.routers.renew_capture_due(now)
        except ModelportError as exc:
            log.warning("%s: renewing the routers' capture credential: %s", self.name, exc.message)
        for name, (release, scope, held) in list(self._staged.items()):
            if held is not None and now < held.refresh_at:
                continue
            try:
                await self._renew(name, release, scope)
            except ModelportError as exc:
                log.warning("%s: renewing %s's credential: %s", self.name, name, exc.message)

    async def _renew(self, name: str, release: Release, scope: credential.Scope) -> None:
        key = await asyncio.to_thread(credential.signing_key, self.home)
        minted, model_data = _mint(key, scope, release)
        owner = await self.api.get("ConfigMap", release.service)
        if owner is None or name not in self._staged:
            return
        uid = str(owner["metadata"]["uid"])
        collecting = model_data.token if model_data else None
        secret = manifests.staging_secret(release, self.cluster, uid, minted.token, collecting)
        await self.api.apply(secret)
        self._staged[name] = (release, scope, minted)

    async def publish(
        self, routes: dict[str, dict[str, Any]], tokens: dict[str, Any] | None = None
    ) -> None:
        """Each service's route policy into its ConfigMap, where the routers read it (the
        token keys into theirs, before any policy that needs them); then until every
        router serves the generation it names (so an old one may be drained)."""
        # Only a cluster with services needs them (and one without may not answer now).
        if tokens is not None and routes and tokens != self._tokens:
            await self._publish_tokens(tokens)
        waiting = {}
        for service, route in routes.items():
            policy = {
                k: v for k, v in route.items() if k not in ("replicas", "exitFiles", "unixSockets")
            }
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
            await self.routers.until_serving(waiting)

    async def _publish_tokens(self, tokens: dict[str, Any]) -> None:
        """The issuer and public keys (never a private key) the routers verify tokens with."""
        text = json.dumps(tokens, sort_keys=True)
        if await self.api.get("ConfigMap", names.TOKENS) is None:
            labels = names.workspace_labels(self.cluster.workspace)
            await self.api.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": manifests.metadata(names.TOKENS, self.cluster.namespace, labels),
                    "data": {routing.TOKENS_KEY: text},
                }
            )
        else:
            await self.api.patch_data("ConfigMap", names.TOKENS, {routing.TOKENS_KEY: text})
        self._tokens = tokens

    # -- the cluster side, for ClusterTarget ------------------------------------------
    async def install(self, tls: str | None = None) -> list[str]:
        return await self.routers.install(tls)

    async def manifests(self, tls: str | None = None) -> list[dict[str, Any]]:
        return await self.routers.manifests(tls)

    def router_uri(self) -> str:
        return self.routers.uri()

    def scoring_uri(self, service: str) -> str:
        return self.routers.scoring_uri(service)

    async def stats(self) -> dict[str, Any] | None:
        return await self.routers.stats()


def _service_of(obj: dict[str, Any]) -> str | None:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels.get(names.SERVICE)


def _mint(
    key: bytes, scope: credential.Scope, release: Release
) -> tuple[credential.Credential, credential.Credential | None]:
    """A generation's staging credential, and its model-data one if it collects."""
    staging = credential.mint(key, scope)
    if not release.plan.collect_model_data:
        return staging, None
    return staging, credential.mint(key, scope, audience=credential.MODEL_DATA)


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
