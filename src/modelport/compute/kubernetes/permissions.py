"""What modelport may do in a cluster: one table for the Role it installs and the checks
it runs when a cluster is attached (SelfSubjectAccessReview per rule)."""

from __future__ import annotations

from dataclasses import dataclass

MANAGE = ("get", "list", "watch", "create", "update", "patch", "delete")
READ = ("get", "list", "watch")


@dataclass(frozen=True)
class Permission:
    group: str  # "" is the core API group
    resource: str  # "deployments", or a subresource as "deployments/scale"
    verbs: tuple[str, ...]
    why: str

    def describe(self, verb: str) -> str:
        api = self.group or "core"
        return f"{verb} {self.resource} ({api})"


# The control plane's rights in the service namespace.
CONTROL_PLANE: tuple[Permission, ...] = (
    Permission("apps", "deployments", MANAGE, "a Deployment per service generation"),
    Permission("apps", "deployments/scale", ("get", "patch", "update"), "autoscaling"),
    Permission("", "services", MANAGE, "a headless Service per generation, the router's"),
    Permission("", "configmaps", MANAGE, "route policy, the service's owner object"),
    Permission("", "secrets", MANAGE, "keys and the staging credential"),
    Permission("", "pods", READ, "readiness and failure reasons"),
    Permission("", "pods/log", ("get",), "get_logs and init() tracebacks"),
    Permission("", "pods/proxy", ("get",), "busy/ready counts from the routers"),
    Permission("", "events", READ, "the scheduler's reasons"),
    Permission("discovery.k8s.io", "endpointslices", READ, "ready replicas"),
    Permission("policy", "poddisruptionbudgets", MANAGE, "one per generation"),
    Permission("networking.k8s.io", "networkpolicies", MANAGE, "only routers reach replicas"),
    Permission("autoscaling", "horizontalpodautoscalers", ("list",), "warn about an HPA"),
)

# `modelport compute install` also creates these (checked only when installing).
INSTALL: tuple[Permission, ...] = (
    Permission("", "namespaces", ("get", "create"), "the service namespace"),
    Permission("", "serviceaccounts", MANAGE, "the router's identity"),
    Permission("rbac.authorization.k8s.io", "roles", MANAGE, "least-privilege roles"),
    Permission("rbac.authorization.k8s.io", "rolebindings", MANAGE, "least-privilege roles"),
)

# The router pods' rights: read the routes and which replicas are ready.
ROUTER: tuple[Permission, ...] = (
    Permission("", "configmaps", READ, "route policy"),
    Permission("", "secrets", ("get",), "key digests"),
    Permission("discovery.k8s.io", "endpointslices", READ, "ready replicas"),
)


def split(permission: Permission) -> tuple[str, str | None]:
    """``deployments/scale`` -> (``deployments``, ``scale``)."""
    resource, _, sub = permission.resource.partition("/")
    return resource, sub or None
