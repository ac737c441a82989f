"""What ``modelport compute install`` puts into a namespace, once: plain objects, no I/O.

The router runs as a Deployment of its own: in each pod the router (the same code
as on one machine, started by :mod:`modelport.compute.kubernetes.launch`) and a
route-sync container (``modelport.compute.kubernetes.routes``) that watches the
services' ConfigMaps and EndpointSlices and hands the route table to the router's
admin port.  A LoadBalancer Service on port 80 is the scoring address; with a TLS
Secret (``tls.crt``/``tls.key``, cert-manager's layout) the router serves HTTPS
and the Service's port is 443, named ``https`` (which is how the control plane
knows the scheme); the router reloads the Secret's files when the kubelet
updates them.  The
router's ServiceAccount gets the ``ROUTER`` rights of :mod:`.permissions` and no
more; the control plane's Role (``CONTROL_PLANE``) is printed for the cluster's
administrator to bind to the identity the control plane uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelport.compute.kubernetes import names, pod
from modelport.compute.kubernetes.permissions import CONTROL_PLANE, ROUTER, Permission
from modelport.compute.kubernetes.settings import ClusterSettings

ROUTER_PORT = 8080
ROUTER_ADMIN_PORT = 8081
ROUTES_DIR = "/var/modelport/routes"  # the last table, so a restarted router serves at once
TLS_DIR = "/etc/modelport/tls"
TLS_VOLUME = "tls"
CAPTURE_KEY = "capture"  # the router Secret's key of the capture credential
LAUNCH_MODULE = "modelport.compute.kubernetes.launch"
ROUTES_MODULE = "modelport.compute.kubernetes.routes"

Object = dict[str, Any]


def _meta(cluster: ClusterSettings, name: str, labels: dict[str, str]) -> Object:
    return {"name": name, "namespace": cluster.namespace, "labels": labels}


def namespace(cluster: ClusterSettings) -> Object:
    labels = names.workspace_labels(cluster.workspace)
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": cluster.namespace, "labels": labels},
    }


def rules(permissions: Sequence[Permission]) -> list[Object]:
    return [
        {"apiGroups": [p.group], "resources": [p.resource], "verbs": list(p.verbs)}
        for p in permissions
    ]


def role(cluster: ClusterSettings, name: str, permissions: Sequence[Permission]) -> Object:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(cluster, name, names.workspace_labels(cluster.workspace)),
        "rules": rules(permissions),
    }


def control_plane_role(cluster: ClusterSettings) -> Object:
    """What the control plane may do here; bind it to the kubeconfig's identity."""
    return role(cluster, names.CONTROL_PLANE, CONTROL_PLANE)


def router_role(cluster: ClusterSettings) -> Object:
    return role(cluster, names.ROUTER, ROUTER)


def router_service_account(cluster: ClusterSettings) -> Object:
    labels = names.router_labels(cluster.workspace)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(cluster, names.ROUTER, labels),
    }


def router_role_binding(cluster: ClusterSettings) -> Object:
    labels = names.router_labels(cluster.workspace)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(cluster, names.ROUTER, labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.ROUTER},
        "subjects": [
            {"kind": "ServiceAccount", "name": names.ROUTER, "namespace": cluster.namespace}
        ],
    }


@dataclass(frozen=True)
class Reporting:
    """What a cluster's routers send the control plane besides answers: the requests
    they capture and their request log (``target``: the compute target's name, whose
    ``capture`` credential they send with), and spans (``telemetry``: ``OTEL_*``)."""

    target: str | None = None
    capture: str | None = None
    telemetry: Mapping[str, str] = field(default_factory=dict)
    requests: bool = False  # the request log's lines go to the control plane too


def router_secret(cluster: ClusterSettings, token: str, capture: str | None = None) -> Object:
    """The router's admin token, shared by its two containers, and the credential its
    capture of requests reaches the control plane with."""
    labels = names.router_labels(cluster.workspace)
    data = {pod.TOKEN_KEY: token}
    if capture is not None:
        data[CAPTURE_KEY] = capture
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(cluster, names.ROUTER, labels),
        "type": "Opaque",
        "stringData": data,
    }


def _reporting_env(cluster: ClusterSettings, reporting: Reporting) -> list[Object]:
    """Where the router sends the requests it captures (router/capture.py) and its
    request log's lines (the control plane, which keeps them with this machine's), and
    its spans."""
    spans = pod.env_list(dict(reporting.telemetry))
    if reporting.target is None:
        return spans
    url = f"{cluster.stage_url.rstrip('/')}{pod.INGEST_PATH}/_routers/{reporting.target}"
    env: list[Object] = [{"name": "MODELPORT_CAPTURE_URL", "value": url.replace("$", "$$")}]
    if reporting.requests:  # the request log's lines go there too (router/requestlog.py)
        env.append({"name": "MODELPORT_ROUTER_REQUEST_LOG", "value": "send"})
    if cluster.stage_ca:
        env.append({"name": "MODELPORT_CAPTURE_CA", "value": cluster.stage_ca})
    # optional: a Secret applied by an older release has no such key; the router then
    # captures nothing and says so
    ref = {"secretKeyRef": {"name": names.ROUTER, "key": CAPTURE_KEY, "optional": True}}
    return [*env, {"name": "MODELPORT_CAPTURE_TOKEN", "valueFrom": ref}, *spans]


def _field(name: str, path: str) -> Object:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _token() -> Object:
    ref = {"secretKeyRef": {"name": names.ROUTER, "key": pod.TOKEN_KEY}}
    return {"name": "MODELPORT_ROUTER_TOKEN", "valueFrom": ref}


def _tcp_probe(period_s: int, failures: int) -> Object:
    return {
        "tcpSocket": {"port": ROUTER_PORT},
        "periodSeconds": period_s,
        "failureThreshold": failures,
    }


def _tls_env(tls_secret: str | None) -> list[Object]:
    if tls_secret is None:
        return []
    return [
        {"name": "MODELPORT_ROUTER_TLS_CERT", "value": f"{TLS_DIR}/tls.crt"},
        {"name": "MODELPORT_ROUTER_TLS_KEY", "value": f"{TLS_DIR}/tls.key"},
        {"name": "MODELPORT_ROUTER_PLAIN_HTTP", "value": "off"},
    ]


def router_container(
    cluster: ClusterSettings, tls_secret: str | None = None, reporting: Reporting = Reporting()
) -> Object:
    mounts: list[Object] = [{"name": "routes", "mountPath": ROUTES_DIR, "readOnly": True}]
    if tls_secret is not None:
        mounts.append({"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True})
    return {
        "name": "router",
        "image": cluster.image,
        "command": ["python", "-m", LAUNCH_MODULE],
        "env": [
            _field("POD_IP", "status.podIP"),
            {"name": "MODELPORT_ROUTER_HOST", "value": "$(POD_IP)"},
            {"name": "MODELPORT_ROUTER_PORT", "value": str(ROUTER_PORT)},
            {"name": "MODELPORT_ROUTER_ADMIN_PORT", "value": str(ROUTER_ADMIN_PORT)},
            {"name": "MODELPORT_ROUTER_TABLE_DIR", "value": ROUTES_DIR},
            _token(),
            *_tls_env(tls_secret),
            *_reporting_env(cluster, reporting),
        ],
        "ports": [
            {"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ROUTER_ADMIN_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "readinessProbe": _tcp_probe(1, 1),
        "livenessProbe": _tcp_probe(10, 3),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": pod.security_context(cluster),
    }


def route_sync_container(cluster: ClusterSettings) -> Object:
    return {
        "name": "route-sync",
        "image": cluster.image,
        "command": ["python", "-m", ROUTES_MODULE],
        "env": [
            _field("POD_IP", "status.podIP"),
            _field("POD_NAME", "metadata.name"),
            _field("MODELPORT_NAMESPACE", "metadata.namespace"),
            {"name": "MODELPORT_WORKSPACE", "value": cluster.workspace},
            {
                "name": "MODELPORT_ROUTER_ADMIN_URL",
                "value": f"http://$(POD_IP):{ROUTER_ADMIN_PORT}",
            },
            {"name": "MODELPORT_ROUTER_TABLE_DIR", "value": ROUTES_DIR},
            _token(),
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": [{"name": "routes", "mountPath": ROUTES_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": pod.security_context(cluster),
    }


def router_deployment(
    cluster: ClusterSettings, tls_secret: str | None = None, reporting: Reporting = Reporting()
) -> Object:
    labels = names.router_labels(cluster.workspace)
    volumes: list[Object] = [{"name": "routes", "emptyDir": {}}]
    if tls_secret is not None:
        secret = {"secretName": tls_secret, "defaultMode": 0o400}
        volumes.append({"name": TLS_VOLUME, "secret": secret})
    spec: Object = {
        "serviceAccountName": names.ROUTER,
        "enableServiceLinks": False,
        "containers": [
            router_container(cluster, tls_secret, reporting),
            route_sync_container(cluster),
        ],
        "volumes": volumes,
    }
    if cluster.run_as_user is not None:
        spec["securityContext"] = {"fsGroup": cluster.run_as_user}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(cluster, names.ROUTER, labels),
        "spec": {
            "replicas": cluster.router_replicas,
            "selector": {"matchLabels": names.router_selector(cluster.workspace)},
            # A new router pod serves before an old one leaves.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def router_service(cluster: ClusterSettings, tls: bool = False) -> Object:
    """The scoring address: ``http(s)://<its address>/api/v1/service/<name>/score``."""
    labels = names.router_labels(cluster.workspace)
    port = {"name": "https", "port": 443} if tls else {"name": "http", "port": 80}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(cluster, names.ROUTER, labels),
        "spec": {
            "type": "LoadBalancer",
            "selector": names.router_selector(cluster.workspace),
            "ports": [{**port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def tls_secret_of(deployment: Object | None) -> str | None:
    """The TLS Secret an installed router Deployment serves, if any."""
    spec = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    for volume in spec.get("volumes") or []:
        if volume.get("name") == TLS_VOLUME:
            return (volume.get("secret") or {}).get("secretName")
    return None


def install_objects(
    cluster: ClusterSettings,
    router_token: str,
    tls_secret: str | None = None,
    reporting: Reporting = Reporting(),
) -> list[Object]:
    """Everything ``modelport compute install`` applies, in order."""
    return [
        namespace(cluster),
        control_plane_role(cluster),
        router_service_account(cluster),
        router_role(cluster),
        router_role_binding(cluster),
        router_secret(cluster, router_token, reporting.capture),
        router_deployment(cluster, tls_secret, reporting),
        router_service(cluster, tls_secret is not None),
    ]
