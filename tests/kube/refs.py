"""Secrets, ConfigMaps and pod fields, read as the kubelet reads them for env and volumes."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import ConfigMap, Secret


class ConfigError(Exception):
    """A container cannot be configured yet (reported as CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodFacts:
    """What the downward API can tell a container about its pod."""

    name: str
    namespace: str
    uid: str
    node_name: str
    service_account: str
    pod_ip: str
    host_ip: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
        }
        if path in simple:
            return simple[path]
        if path == "metadata.labels":
            return _lines(self.labels)
        if path == "metadata.annotations":
            return _lines(self.annotations)
        keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if keyed:
            source = self.labels if keyed[1] == "labels" else self.annotations
            return source.get(keyed[2], "")
        raise ConfigError(f"unsupported fieldPath {path!r}")


def _lines(values: dict[str, str]) -> str:
    return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))


async def secret_data(
    client: AsyncClient, namespace: str, name: str, optional: bool
) -> dict[str, bytes] | None:
    """The decoded data of a Secret; None if it is missing and ``optional``."""
    try:
        secret = await client.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404 and optional:
            return None
        if exc.status.code == 404:
            raise ConfigError(f'secret "{name}" not found') from exc
        raise
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


async def config_map_data(
    client: AsyncClient, namespace: str, name: str, optional: bool
) -> dict[str, bytes] | None:
    """The data and binaryData of a ConfigMap; None if it is missing and ``optional``."""
    try:
        config_map = await client.get(ConfigMap, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404 and optional:
            return None
        if exc.status.code == 404:
            raise ConfigError(f'configmap "{name}" not found') from exc
        raise
    data = {k: v.encode() for k, v in (config_map.data or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (config_map.binaryData or {}).items()})
    return data


def key_of(
    data: dict[str, bytes] | None, kind: str, name: str, key: str, optional: bool
) -> str | None:
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {name}")
    return data[key].decode(errors="replace")
