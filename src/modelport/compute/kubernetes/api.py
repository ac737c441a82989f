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
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import AsyncClient as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

from modelport.compute.kubernetes import kubeconfig
from modelport.compute.kubernetes.permissions import Permission, split
from modelport.errors import ClusterUnreachableError, ComputeTargetError

T = TypeVar("T")
TIMEOUT_S = 10.0
PARALLEL_REVIEWS = 8  # access reviews in flight at once
Missing = tuple[Permission, str]  # a permission and the verb it lacks


class KubeAPI:
    """One cluster: a kubeconfig's context (default: its current one) and a namespace
    (default: the context's, else ``default``). Use as ``async with KubeAPI(...) as api``."""

    def __init__(
        self,
        config_text: str,
        context: str | None = None,
        namespace: str | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        config = kubeconfig.load(config_text, context)
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


def _reason(exc: Any) -> str:
    """The transport's reason, or its type when it gave none."""
    return str(exc) or type(exc).__name__
