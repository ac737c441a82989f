"""The one door to a Kubernetes API server: a thin, typed wrapper of lightkube's AsyncClient.

Everything modelport asks of a cluster goes through :class:`KubeAPI`. The client's
errors are mapped here, at the boundary: a server that does not answer is a
:class:`ClusterUnreachableError` naming it, any other refusal a
:class:`ComputeTargetError` with the server's own words. Credentials appear in neither.
Tests give it an ``httpx2.MockTransport`` (lightkube 1.0 speaks httpx2), or the
harness cluster's kubeconfig.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import AsyncClient as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

from modelport.compute.kubernetes import kubeconfig
from modelport.compute.kubernetes.permissions import Permission, split
from modelport.errors import ClusterUnreachableError, ComputeTargetError, WatchExpiredError

T = TypeVar("T")
FIELD_MANAGER = "modelport"
RETRIES = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WATCH_S = 290  # a watch the server ends after this long is started again
# kind -> (API group, plural, namespaced); the group's version is the server's.
KINDS: dict[str, tuple[str, str, bool]] = {
    "ConfigMap": ("", "configmaps", True),
    "Secret": ("", "secrets", True),
    "Service": ("", "services", True),
    "Pod": ("", "pods", True),
    "Event": ("", "events", True),
    "ServiceAccount": ("", "serviceaccounts", True),
    "Namespace": ("", "namespaces", False),
    "Deployment": ("apps", "deployments", True),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets", True),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies", True),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices", True),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers", True),
    "Role": ("rbac.authorization.k8s.io", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings", True),
}
# Newest first: what production clusters serve, then what Kubernetes 1.20 serves.
VERSIONS = {"policy": ("v1", "v1beta1"), "discovery.k8s.io": ("v1", "v1beta1")}
TIMEOUT_S = 10.0
PARALLEL_REVIEWS = 8  # access reviews in flight at once
Missing = tuple[Permission, str]  # a permission and the verb it lacks


class KubeAPI:
    """One cluster: a kubeconfig's context (default: its current one) and a namespace
    (default: the context's, else ``default``). Use as ``async with KubeAPI(...) as api``."""

    def __init__(
        self,
        config_text: str | SingleConfig,
        context: str | None = None,
        namespace: str | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        if isinstance(config_text, SingleConfig):
            config = config_text
        else:
            config = kubeconfig.load(config_text, context)
        self._versions: dict[str, str] = {}
        self.context = config.context_name
        self.namespace = namespace or config.namespace
        self.server = config.cluster.server
        self._timeout_s = timeout_s
        timeout = httpx2.Timeout(timeout_s)
        try:
            self._client = AsyncClient(
                config,
                namespace=self.namespace,
                timeout=timeout,
                field_manager="modelport",
                transport=transport,
            )
            # For the few paths that are not resources (/version).
            # lightkube types ConnectionParams.transport for its sync client only.
            params = ConnectionParams(timeout=timeout, transport=transport)  # type: ignore[arg-type]
            self._http = HttpClient(config, params)
        except (OSError, ValueError) as exc:  # ssl: certificate data that does not load
            raise ComputeTargetError(
                f"the credentials of context {self.context!r} cannot be loaded: {exc}"
            ) from None

    @classmethod
    def in_cluster(cls, namespace: str) -> KubeAPI:
        """From inside a pod: its service account's token and the cluster's CA."""
        config = KubeConfig.from_service_account().get()
        assert config is not None  # get() without a default returns one or raises
        return cls(config, namespace=namespace)

    def __repr__(self) -> str:
        return f"KubeAPI(server={self.server!r}, context={self.context!r}, ns={self.namespace!r})"

    async def __aenter__(self) -> KubeAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def version(self) -> str:
        """The server's version (``gitVersion``, e.g. ``v1.20.2``); proves that it answers."""
        response = await self._call(self._http.get("/version"), "get /version")
        if response.is_error:
            raise self._refused(response.status_code, response.reason_phrase, "get /version")
        try:
            return str(response.json()["gitVersion"])
        except (ValueError, KeyError, TypeError):
            raise ComputeTargetError(
                f"{self._what} answered /version without a version; is it a Kubernetes API server?"
            ) from None

    async def can_i(self, permissions: Iterable[Permission]) -> list[Missing]:
        """The (permission, verb) pairs the credentials lack in the namespace, in table
        order: one SelfSubjectAccessReview each."""
        wanted = [(p, verb) for p in permissions for verb in p.verbs]
        gate = asyncio.Semaphore(PARALLEL_REVIEWS)

        async def allowed(permission: Permission, verb: str) -> bool:
            async with gate:
                return await self._review(permission, verb)

        answers = await asyncio.gather(*(allowed(p, verb) for p, verb in wanted))
        return [pair for pair, ok in zip(wanted, answers, strict=True) if not ok]

    async def _review(self, permission: Permission, verb: str) -> bool:
        resource, subresource = split(permission)
        attributes = ResourceAttributes(
            group=permission.group,
            resource=resource,
            subresource=subresource,
            verb=verb,
            namespace=self.namespace,
        )
        review = SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes)
        )
        answer = await self._call(self._client.create(review), "create selfsubjectaccessreviews")
        return bool(answer.status and answer.status.allowed)

    # -- objects, as plain dicts (the manifests are dicts) -----------------------------
    async def served_version(self, group: str, versions: tuple[str, ...]) -> str:
        """The first of ``versions`` the server serves for ``group`` (e.g. policy/v1 from
        Kubernetes 1.21 on, else policy/v1beta1); checked once per group."""
        if group not in self._versions:
            answer = await self._json("GET", f"/apis/{group}", f"get /apis/{group}")
            served = {v["version"] for v in (answer or {}).get("versions", [])}
            found = next((v for v in versions if v in served), None)
            if found is None:
                raise ComputeTargetError(
                    f"{self._what} serves none of {', '.join(versions)} of {group}"
                )
            self._versions[group] = found
        return f"{group}/{self._versions[group]}"

    async def _path(self, kind: str, name: str | None = None, sub: str | None = None) -> str:
        group, plural, namespaced = KINDS[kind]
        if not group:
            base = "/api/v1"
        else:
            base = f"/apis/{await self.served_version(group, VERSIONS.get(group, ('v1',)))}"
        where = f"/namespaces/{self.namespace}" if namespaced else ""
        path = f"{base}{where}/{plural}"
        if name is not None:
            path += f"/{name}"
        if sub is not None:
            path += f"/{sub}"
        return path

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager ``modelport``, conflicts taken over)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        path = await self._path(kind, name)
        answer = await self._json(
            "PATCH",
            path,
            f"apply {kind} {name}",
            content=json.dumps(obj).encode(),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            headers={"content-type": "application/apply-patch+yaml"},
        )
        assert answer is not None
        return answer

    async def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return await self._json(
            "GET", await self._path(kind, name), f"get {kind} {name}", ok404=True
        )

    async def list(self, kind: str, labels: dict[str, str]) -> builtins.list[dict[str, Any]]:
        items, _ = await self.list_at(kind, labels)
        return items

    async def list_at(
        self, kind: str, labels: dict[str, str]
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """The objects and the resourceVersion to watch from."""
        answer = await self._json(
            "GET", await self._path(kind), f"list {kind}", params=_selector(labels)
        )
        assert answer is not None
        return answer.get("items") or [], answer["metadata"].get("resourceVersion", "")

    async def delete(self, kind: str, name: str) -> None:
        """Deleted with what it owns (background propagation); absent already is fine."""
        body = json.dumps({"propagationPolicy": "Background"}).encode()
        await self._json(
            "DELETE",
            await self._path(kind, name),
            f"delete {kind} {name}",
            content=body,
            headers={"content-type": "application/json"},
            ok404=True,
        )

    async def patch_data(self, kind: str, name: str, data: dict[str, str]) -> None:
        """Merge ``data`` into a ConfigMap's (or Secret's) data."""
        body = json.dumps({"data": data}).encode()
        await self._json(
            "PATCH",
            await self._path(kind, name),
            f"patch {kind} {name}",
            content=body,
            headers={"content-type": "application/merge-patch+json"},
        )

    async def scale(self, deployment: str, replicas: int) -> None:
        """The ``scale`` subresource, as an autoscaler should (never an HPA)."""
        body = json.dumps({"spec": {"replicas": replicas}}).encode()
        await self._json(
            "PATCH",
            await self._path("Deployment", deployment, "scale"),
            f"scale deployments/{deployment}",
            content=body,
            headers={"content-type": "application/merge-patch+json"},
        )

    async def logs(
        self,
        pod: str,
        container: str,
        tail_lines: int,
        previous: bool = False,
        since_s: int | None = None,
    ) -> str:
        params = {"container": container, "tailLines": str(tail_lines)}
        if previous:
            params["previous"] = "true"
        if since_s is not None:
            params["sinceSeconds"] = str(max(1, since_s))
        path = await self._path("Pod", pod, "log")
        response = await self._call(self._http.get(path, params=params), f"get pods/{pod}/log")
        if response.status_code in (400, 404):  # not started yet, or gone
            return ""
        if response.is_error:
            raise self._refused(response.status_code, response.text, f"get pods/{pod}/log")
        return response.text

    async def follow_logs(
        self, pod: str, container: str, tail_lines: int | None, since_s: int | None
    ) -> AsyncIterator[str]:
        """A container's log lines as they are written (none while it has not started,
        and the stream ends when the pod goes)."""
        lines = self._client.log(
            pod,
            container=container,
            follow=True,
            tail_lines=tail_lines,
            since=None if since_s is None else max(1, since_s),
            newlines=False,
        )
        try:
            async for line in lines:
                yield line
        except ApiError as exc:
            if exc.status.code in (400, 404):  # not started yet, or gone
                return
            raise self._refused(
                exc.status.code or 0, exc.status.message or "", "follow logs"
            ) from None
        except httpx2.TransportError as exc:
            raise ClusterUnreachableError(f"cannot reach {self._what}: {_reason(exc)}") from None

    async def proxy_get(
        self, pod: str, port: int, path: str, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """GET ``path`` on a pod's ``port`` through the API server (``pods/proxy``):
        the status and body; 502 when the pod does not answer."""
        url = await self._path("Pod", f"{pod}:{port}", f"proxy/{path.lstrip('/')}")
        try:
            response = await self._call(self._http.get(url, headers=headers), "pods/proxy")
        except ClusterUnreachableError:
            return 502, b""
        return response.status_code, response.content

    async def watch(
        self, kind: str, labels: dict[str, str], resource_version: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Changes of ``kind`` after ``resource_version`` (from :meth:`list_at`); without
        one, the current objects come first as ADDED.  Ends when the server closes the
        stream; an expired version (410 Gone) raises :class:`WatchExpiredError`, after
        which the caller lists again."""
        params = {**_selector(labels), "watch": "true", "timeoutSeconds": str(WATCH_S)}
        if resource_version:
            params["resourceVersion"] = resource_version
            params["allowWatchBookmarks"] = "true"
        path = await self._path(kind)
        timeout = httpx2.Timeout(self._timeout_s, read=WATCH_S + self._timeout_s)
        request = self._http.build_request("GET", path, params=params, timeout=timeout)
        response = await self._call(self._http.send(request, stream=True), f"watch {kind}")
        try:
            if response.is_error:
                await response.aread()
                raise self._refused(response.status_code, response.text, f"watch {kind}")
            async for line in _lines(response, self):
                event = json.loads(line)
                kind_of_event, obj = event.get("type"), event.get("object") or {}
                if kind_of_event == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise WatchExpiredError(f"the watch of {kind} expired (410 Gone)")
                    raise ComputeTargetError(f"watching {kind}: {obj.get('message')}")
                if kind_of_event == "BOOKMARK":
                    continue
                yield str(kind_of_event), obj
        finally:
            await response.aclose()

    async def _json(
        self,
        method: str,
        path: str,
        doing: str,
        *,
        ok404: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """One call, tried again when the server sheds load (429, with its Retry-After)
        or has a passing fault (5xx): every call modelport makes may be repeated."""
        for attempt in range(1, RETRIES + 1):
            response = await self._call(self._http.request(method, path, **kwargs), doing)
            if response.status_code not in RETRY_STATUSES or attempt == RETRIES:
                break
            await asyncio.sleep(_retry_after(response, attempt))
        if ok404 and response.status_code == 404:
            return None
        if response.is_error:
            raise self._refused(response.status_code, _message(response), doing)
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    @property
    def _what(self) -> str:
        return f"the Kubernetes API server {self.server} (context {self.context!r})"

    async def _call(self, call: Awaitable[T], doing: str) -> T:
        try:
            return await call
        except ApiError as exc:
            raise self._refused(exc.status.code or 0, exc.status.message or "", doing) from None
        except httpx2.TimeoutException:
            raise ClusterUnreachableError(
                f"{self._what} did not answer within {self._timeout_s:g} s"
            ) from None
        except httpx2.TransportError as exc:
            raise ClusterUnreachableError(f"cannot reach {self._what}: {_reason(exc)}") from None

    def _refused(self, status: int, message: str, doing: str) -> ComputeTargetError:
        if status == 401:
            return ComputeTargetError(f"{self._what} refused the credentials (401 Unauthorized)")
        if status == 403:
            return ComputeTargetError(f"the credentials may not {doing} on {self._what}")
        return ComputeTargetError(f"{self._what} answered {status} to {doing}: {message}")


def _retry_after(response: httpx2.Response, attempt: int) -> float:
    """The server's Retry-After (seconds), else a back-off doubling from 0.1 s; at most 5."""
    try:
        given = float(response.headers.get("retry-after", ""))
    except ValueError:
        given = 0.1 * 2 ** (attempt - 1)
    return min(max(given, 0.0), 5.0)


def _selector(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        return {}
    return {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}


def _message(response: httpx2.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except ValueError:
        return response.reason_phrase


async def _lines(response: httpx2.Response, api: KubeAPI) -> AsyncIterator[str]:
    try:
        async for line in response.aiter_lines():
            if line.strip():
                yield line
    except httpx2.TransportError as exc:  # a dropped stream: the caller lists again
        raise ClusterUnreachableError(
            f"the watch stream from {api.server} broke: {_reason(exc)}"
        ) from None


def _reason(exc: Any) -> str:
    """The transport's reason, or its type when it gave none."""
    return str(exc) or type(exc).__name__
