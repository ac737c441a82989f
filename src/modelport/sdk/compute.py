"""Compute targets with the v1 names: ``ComputeTarget``, ``AksCompute``.

``ComputeTarget(ws, name)`` returns the subclass for the target's type, as v1 does,
and raises ``ComputeTargetException`` (modelport's ComputeTargetNotFoundError) when
there is none. A cluster is attached by its kubeconfig::

    config = AksCompute.attach_configuration(kubeconfig="~/.kube/config", namespace="ml")
    aks = ComputeTarget.attach(ws, "myaks", config)
    aks.wait_for_completion(show_output=True)

modelport never creates or deletes a cluster: ``provisioning_configuration``,
``ComputeTarget.create`` and ``delete`` say so; ``detach`` forgets one.
"""

from __future__ import annotations

import builtins
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

from modelport.errors import ComputeTargetError
from modelport.sdk.kinds import new_by_type
from modelport.sdk.kubeconfig import flatten
from modelport.sdk.workspace import Workspace
from modelport.spec.compute import (
    AKS,
    DEV_TEST,
    FAST_PROD,
    SUCCEEDED,
    check_cluster_purpose,
    check_compute_name,
    check_namespace,
)

_CREATE = (
    "modelport does not create clusters; attach an existing one with "
    "AksCompute.attach_configuration(kubeconfig=...) and ComputeTarget.attach"
)


def _path(name: str) -> str:
    return f"/api/v1/computes/{quote(name)}"


class ComputeTarget:
    """An attached compute target. ``ComputeTarget(ws, name)`` loads it (as its
    subclass); ``ComputeTarget.list(ws)`` all of them."""

    _compute_type: ClassVar[str] = ""
    _prefetched: dict[str, Any] | None = None

    def __new__(cls, workspace: Workspace, name: str, _data: dict[str, Any] | None = None) -> Any:
        def fetch() -> dict[str, Any]:
            return _data or workspace.client.call("GET", _path(name))

        return new_by_type(cls, ComputeTarget, fetch, _CLASSES, AksCompute)

    def __init__(
        self, workspace: Workspace, name: str, _data: dict[str, Any] | None = None
    ) -> None:
        self.workspace = workspace
        self.name = name
        self._load(
            _data or getattr(self, "_prefetched", None) or workspace.client.call("GET", _path(name))
        )

    def _load(self, data: dict[str, Any]) -> None:
        self._data = data
        self.name = data["name"]
        self.type: str = data["computeType"]
        self.provisioning_state: str = data["provisioningState"]
        self.provisioning_errors: str | None = data.get("provisioningErrors")
        self.is_attached = bool(data.get("isAttachedCompute", True))
        self.cluster_purpose: str | None = data.get("clusterPurpose")
        self.namespace: str = data["namespace"]
        self.context: str = data["context"]
        self.server: str = data["server"]  # host:port of the API server
        self.server_version: str | None = data.get("serverVersion")
        self.created_on = datetime.fromisoformat(data["createdTime"])
        self.modified_on = datetime.fromisoformat(data["updatedTime"])
        # v1 attributes that have no meaning here (Azure resource ids, regions, tags)
        self.id: str | None = None
        self.location: str | None = None
        self.tags: dict[str, str] | None = None
        self.description: str | None = None
        self.cluster_resource_id: str | None = None
        self.cluster_location: str | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, id={self.id}, "
            f"type={self.type}, provisioning_state={self.provisioning_state}, "
            f"location={self.location}, tags={self.tags})"
        )

    # -- v1's class methods ----------------------------------------------------------
    @staticmethod
    def attach(
        workspace: Workspace, name: str, attach_configuration: AksAttachConfiguration
    ) -> ComputeTarget:
        """Attach a cluster (the server checks it first); returns it as its subclass."""
        check_compute_name(name)
        body = attach_configuration._body()
        data = workspace.client.call("PUT", _path(name), json=body)
        target: ComputeTarget = ComputeTarget(workspace, name, _data=data)
        return target

    @staticmethod
    def create(workspace: Workspace, name: str, provisioning_configuration: Any) -> NoReturn:
        raise ComputeTargetError(_CREATE)

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[ComputeTarget]:
        data = workspace.client.call("GET", "/api/v1/computes")
        return [ComputeTarget(workspace, item["name"], _data=item) for item in data["value"]]

    @staticmethod
    def deserialize(workspace: Workspace, object_dict: dict[str, Any]) -> ComputeTarget:
        """A target from :meth:`serialize`'s dictionary (v1's shape)."""
        properties = object_dict.get("properties") or {}
        inner = properties.get("properties") or {}
        data = {
            "name": object_dict["name"],
            "computeType": properties.get("computeType", AKS),
            "isAttachedCompute": properties.get("isAttachedCompute", True),
            "provisioningState": properties.get("provisioningState"),
            "provisioningErrors": properties.get("provisioningErrors"),
            "clusterPurpose": inner.get("clusterPurpose"),
            "namespace": inner.get("namespace"),
            "context": inner.get("context"),
            "server": inner.get("server"),
            "serverVersion": inner.get("serverVersion"),
            "createdTime": properties.get("createdOn"),
            "updatedTime": properties.get("modifiedOn"),
        }
        target: ComputeTarget = ComputeTarget(workspace, data["name"], _data=data)
        return target

    # -- state -----------------------------------------------------------------------
    def refresh_state(self) -> None:
        self._load(self.workspace.client.call("GET", _path(self.name)))

    def get_status(self) -> str:
        """The provisioning state (``Succeeded`` for an attached, checked cluster)."""
        self.refresh_state()
        return self.provisioning_state

    def wait_for_completion(
        self, show_output: bool = False, is_delete_operation: bool = False
    ) -> None:
        """Attaching finishes before ``attach`` returns; this reports how it ended."""
        if not is_delete_operation:
            self.refresh_state()
        state = "Succeeded" if is_delete_operation else self.provisioning_state
        if show_output:
            print(f'Provisioning operation finished, operation "{state}"', file=sys.stderr)
        if state != SUCCEEDED:
            raise ComputeTargetError(
                "Compute object provisioning polling reached non-successful terminal state, "
                f"current provisioning state: {state}\nProvisioning operation error:\n"
                f"{self.provisioning_errors}"
            )

    def detach(self) -> None:
        """Forget the cluster (refused while a service uses it); the cluster is untouched."""
        self.workspace.client.call("DELETE", _path(self.name))
        self.provisioning_state = "Deleting"

    def install(self, tls: str | None = None) -> dict[str, Any]:
        """Set up the cluster side: namespace, least-privilege roles, the router's
        identity, Deployment and Service (modelport's; safe to run again). Returns what
        was applied and the router's address.  ``tls``: the name of a Secret in the
        namespace with ``tls.crt``/``tls.key`` (cert-manager's layout): the routers
        serve HTTPS with it; ``"off"``: plain HTTP; None: as installed."""
        params = {"tls": tls} if tls else {}
        answer: dict[str, Any] = self.workspace.client.call(
            "POST", f"{_path(self.name)}/install", params=params
        )
        return answer

    def manifests(self, tls: str | None = None) -> builtins.list[dict[str, Any]]:
        """What :meth:`install` applies, as objects (for ``kubectl apply -f``)."""
        params = {"tls": tls} if tls else {}
        answer: dict[str, Any] = self.workspace.client.call(
            "GET", f"{_path(self.name)}/manifests", params=params
        )
        return list(answer["manifests"])

    def delete(self) -> NoReturn:
        """v1 deletes clusters it created; an attached one is only detached."""
        raise ComputeTargetError(
            f"compute target {self.name} was attached, not created by modelport: it is never "
            "deleted",
            hint="detach() removes it from the workspace",
        )

    def serialize(self) -> dict[str, Any]:
        """v1's shape (``properties.properties`` holds modelport's Kubernetes details)."""
        return {
            "id": self.id,
            "name": self.name,
            "tags": self.tags,
            "location": self.location,
            "properties": {
                "computeType": self.type,
                "computeLocation": self.cluster_location,
                "description": self.description,
                "resourceId": self.cluster_resource_id,
                "isAttachedCompute": self.is_attached,
                "provisioningState": self.provisioning_state,
                "provisioningErrors": self.provisioning_errors,
                "createdOn": self.created_on.isoformat(),
                "modifiedOn": self.modified_on.isoformat(),
                "properties": {
                    "clusterPurpose": self.cluster_purpose,
                    "namespace": self.namespace,
                    "context": self.context,
                    "server": self.server,
                    "serverVersion": self.server_version,
                },
            },
        }


class AksAttachConfiguration:
    """What ``AksCompute.attach_configuration`` returns: v1's arguments plus the kubeconfig
    that modelport reaches the cluster with."""

    def __init__(
        self,
        resource_group: str | None = None,
        cluster_name: str | None = None,
        resource_id: str | None = None,
        cluster_purpose: str | None = None,
        load_balancer_type: str | None = None,
        load_balancer_subnet: str | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.resource_group = resource_group
        self.cluster_name = cluster_name
        self.resource_id = resource_id
        self.cluster_purpose = cluster_purpose
        self.load_balancer_type = load_balancer_type
        self.load_balancer_subnet = load_balancer_subnet
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        self.validate_configuration()
        unused = [k for k, v in self._azure().items() if v is not None]
        if unused:  # as v1's SDK, configuration speaks on the console
            print(
                f"Warning: {', '.join(unused)}: not used; modelport reaches the cluster "
                "through the kubeconfig",
                file=sys.stderr,
            )

    def _azure(self) -> dict[str, str | None]:
        return {
            "resource_group": self.resource_group,
            "cluster_name": self.cluster_name,
            "resource_id": self.resource_id,
            "load_balancer_type": self.load_balancer_type,
            "load_balancer_subnet": self.load_balancer_subnet,
        }

    def validate_configuration(self) -> None:
        if self.kubeconfig is None:
            raise ComputeTargetError(
                "modelport reaches a cluster through a kubeconfig: give "
                "kubeconfig='~/.kube/config' (and context=, namespace= as needed)"
            )
        if not Path(self.kubeconfig).expanduser().is_file():
            raise ComputeTargetError(f"kubeconfig {str(self.kubeconfig)!r} is not a file")
        self.cluster_purpose = check_cluster_purpose(self.cluster_purpose)
        if self.namespace is not None:
            check_namespace(self.namespace)

    def _body(self) -> dict[str, Any]:
        assert self.kubeconfig is not None  # validate_configuration made sure
        body: dict[str, Any] = {
            "computeType": AKS,
            "kubeconfig": flatten(self.kubeconfig, self.context),
            "clusterPurpose": self.cluster_purpose,
        }
        if self.context is not None:
            body["context"] = self.context
        if self.namespace is not None:
            body["namespace"] = self.namespace
        return body

    def __repr__(self) -> str:
        return (
            f"AksAttachConfiguration(kubeconfig={str(self.kubeconfig)!r}, "
            f"context={self.context!r}, namespace={self.namespace!r}, "
            f"cluster_purpose={self.cluster_purpose!r})"
        )


class AksCompute(ComputeTarget):
    """An attached Kubernetes cluster (v1's ``AksCompute``)."""

    _compute_type = AKS

    class ClusterPurpose:
        """v1's constants: FastProd (the default) or DevTest."""

        FAST_PROD = FAST_PROD
        DEV_TEST = DEV_TEST

    @staticmethod
    def attach_configuration(
        resource_group: str | None = None,
        cluster_name: str | None = None,
        resource_id: str | None = None,
        cluster_purpose: str | None = None,
        load_balancer_type: str | None = None,
        load_balancer_subnet: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> AksAttachConfiguration:
        """v1's arguments (the Azure ones are accepted and not used) plus ``kubeconfig``
        (a file; required), its ``context`` (default: current) and the ``namespace``
        services go to (default: the context's, else ``default``)."""
        return AksAttachConfiguration(
            resource_group,
            cluster_name,
            resource_id,
            cluster_purpose,
            load_balancer_type,
            load_balancer_subnet,
            kubeconfig,
            context,
            namespace,
        )

    @staticmethod
    def provisioning_configuration(*args: Any, **kwargs: Any) -> NoReturn:
        raise ComputeTargetError(_CREATE)


_CLASSES: dict[str, type[ComputeTarget]] = {AKS: AksCompute}
