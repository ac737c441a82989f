"""What a service becomes in a cluster, as plain objects: dict in, dict out, no I/O.

Per service one ConfigMap, named after the service, holds its route policy (what
the routers read) and owns everything else of the service: each generation's
Deployment, headless Service (so the cluster keeps EndpointSlices of its ready
pods), PodDisruptionBudget and staging Secret carry an ownerReference to it, so
deleting the ConfigMap deletes the service.  Every object is labelled with the
workspace and service (and generation), so what modelport made can be listed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from modelport.compute.kubernetes import names, pod
from modelport.compute.kubernetes.release import PlanLike, Release
from modelport.compute.kubernetes.settings import ClusterSettings

ROUTE_KEY = "route.json"  # the ConfigMap's key for the route policy
REVISION_HISTORY = 1  # a generation's pod template never changes

Object = dict[str, Any]


def metadata(name: str, namespace: str, labels: dict[str, str]) -> Object:
    return {"name": name, "namespace": namespace, "labels": labels}


def owner_reference(service: str, uid: str) -> Object:
    """A generation object's reference to its service's ConfigMap."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": service, "uid": uid}


def route_policy(plan: PlanLike, key_digests: Sequence[str], generation: int) -> dict[str, Any]:
    """The router's view of a service, without its replicas (those come from
    EndpointSlices): the keys of the local target's route table."""
    return {
        "auth": plan.auth,
        "tokenAuth": plan.token_auth,
        "keyDigests": list(key_digests),
        "maxConcurrent": plan.slots,
        "batching": plan.batching,
        "maxWaitMs": plan.max_wait_ms,
        "maxQueue": plan.max_queue,
        "pipelining": plan.pipelining,
        "scoringTimeoutMs": plan.scoring_timeout_ms,
        "generation": generation,
    }


def service_config_map(
    cluster: ClusterSettings,
    service: str,
    plan: PlanLike,
    key_digests: Sequence[str],
    generation: int,
) -> Object:
    """The service's owner object; ``generation`` is the one serving traffic."""
    policy = route_policy(plan, key_digests, generation)
    labels = names.service_labels(cluster.workspace, service)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(service, cluster.namespace, labels),
        "data": {ROUTE_KEY: json.dumps(policy, sort_keys=True)},
    }


def _owned(release: Release, cluster: ClusterSettings, name: str, owner_uid: str) -> Object:
    labels = names.generation_labels(cluster.workspace, release.service, release.generation)
    meta = metadata(name, cluster.namespace, labels)
    meta["ownerReferences"] = [owner_reference(release.service, owner_uid)]
    return meta


def deployment(release: Release, cluster: ClusterSettings, owner_uid: str) -> Object:
    name = names.generation_name(release.service, release.generation)
    meta = _owned(release, cluster, name, owner_uid)
    if release.environment is not None:
        meta["annotations"] = {names.ENVIRONMENT: release.environment.content_hash()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": release.plan.replicas,
            "revisionHistoryLimit": REVISION_HISTORY,
            "selector": {
                "matchLabels": names.generation_selector(release.service, release.generation)
            },
            "template": pod.pod_template(release, cluster),
        },
    }


def headless_service(release: Release, cluster: ClusterSettings, owner_uid: str) -> Object:
    name = names.generation_name(release.service, release.generation)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _owned(release, cluster, name, owner_uid),
        "spec": {
            "clusterIP": "None",
            "selector": names.generation_selector(release.service, release.generation),
            # The protocol is spelled out: server-side apply keys ports by (port, protocol).
            "ports": [
                {
                    "name": "http",
                    "port": pod.SCORE_PORT,
                    "targetPort": pod.SCORE_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def disruption_budget(release: Release, cluster: ClusterSettings, owner_uid: str) -> Object:
    """At most one replica of a generation evicted at a time (node drains, upgrades)."""
    name = names.generation_name(release.service, release.generation)
    return {
        "apiVersion": cluster.pdb_api_version,
        "kind": "PodDisruptionBudget",
        "metadata": _owned(release, cluster, name, owner_uid),
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": names.generation_selector(release.service, release.generation)
            },
        },
    }


def staging_secret(
    release: Release,
    cluster: ClusterSettings,
    owner_uid: str,
    token: str,
    model_data: str | None = None,
) -> Object:
    """The credential the staging step fetches this generation's files with, and the
    one its replicas append model data with (when the service collects)."""
    name = names.staging_secret_name(release.service, release.generation)
    data = {pod.TOKEN_KEY: token}
    if model_data is not None:
        data[pod.MODEL_DATA_KEY] = model_data
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _owned(release, cluster, name, owner_uid),
        "type": "Opaque",
        "stringData": data,
    }


def network_policy(release: Release, cluster: ClusterSettings, owner_uid: str) -> Object:
    """Only the router pods reach a replica's scoring port (the probes' port stays open
    to the node, whose kubelet probes it)."""
    name = names.generation_name(release.service, release.generation)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _owned(release, cluster, name, owner_uid),
        "spec": {
            "podSelector": {
                "matchLabels": names.generation_selector(release.service, release.generation)
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": names.router_selector(cluster.workspace)}}
                    ],
                    "ports": [{"protocol": "TCP", "port": pod.SCORE_PORT}],
                },
                {"ports": [{"protocol": "TCP", "port": pod.HEALTH_PORT}]},
            ],
        },
    }


def generation_objects(
    release: Release,
    cluster: ClusterSettings,
    owner_uid: str,
    token: str,
    model_data: str | None = None,
) -> list[Object]:
    """Everything one generation needs, in the order to create it (the Secret first:
    the pods cannot start without it)."""
    return [
        staging_secret(release, cluster, owner_uid, token, model_data),
        headless_service(release, cluster, owner_uid),
        disruption_budget(release, cluster, owner_uid),
        network_policy(release, cluster, owner_uid),
        deployment(release, cluster, owner_uid),
    ]
