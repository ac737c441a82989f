"""A pod's volumes made on the host, under the pod's folder, ready to be bind-mounted.

emptyDir is a folder; hostPath is the host's path; secret, configMap, downwardAPI and
projected volumes (including service-account tokens from the TokenRequest API) are
folders of files written once when the pod starts, and are mounted read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import (
    DownwardAPIVolumeFile,
    KeyToPath,
    PodSpec,
    Volume,
    VolumeProjection,
)
from lightkube.resources.core_v1 import ServiceAccount

from tests.kube.env import resource_field
from tests.kube.refs import ConfigError, PodFacts, config_map_data, secret_data

Files = dict[str, bytes]


@dataclass(frozen=True)
class HostVolume:
    path: Path
    read_only: bool


def _select(data: dict[str, bytes] | None, items: list[KeyToPath] | None, what: str) -> Files:
    if data is None:
        return {}
    if not items:
        return dict(data)
    files = {}
    for item in items:
        if item.key not in data:
            raise ConfigError(f"couldn't find key {item.key} in {what}")
        files[item.path] = data[item.key]
    return files


def _downward(facts: PodFacts, spec: PodSpec, items: list[DownwardAPIVolumeFile]) -> Files:
    files = {}
    for item in items:
        if item.fieldRef:
            files[item.path] = facts.field(item.fieldRef.fieldPath).encode()
        elif item.resourceFieldRef:
            ref = item.resourceFieldRef
            container = next(c for c in spec.containers if c.name == ref.containerName)
            files[item.path] = resource_field(container, ref).encode()
    return files


async def _service_account_token(
    client: AsyncClient, facts: PodFacts, audience: str | None, expiration: int | None
) -> bytes:
    request = ServiceAccount.Token(
        spec=TokenRequestSpec(
            audiences=[audience] if audience else [], expirationSeconds=expiration or 3600
        )
    )
    answer = await client.create(request, facts.service_account, namespace=facts.namespace)
    assert answer.status is not None and answer.status.token is not None
    return answer.status.token.encode()


async def _projected(
    client: AsyncClient, facts: PodFacts, spec: PodSpec, sources: list[VolumeProjection]
) -> Files:
    files: Files = {}
    ns = facts.namespace
    for source in sources:
        if source.secret:
            s = source.secret
            data = await secret_data(client, ns, s.name or "", bool(s.optional))
            files.update(_select(data, s.items, f"secret {s.name}"))
        elif source.configMap:
            c = source.configMap
            data = await config_map_data(client, ns, c.name or "", bool(c.optional))
            files.update(_select(data, c.items, f"configmap {c.name}"))
        elif source.downwardAPI:
            files.update(_downward(facts, spec, source.downwardAPI.items or []))
        elif source.serviceAccountToken:
            t = source.serviceAccountToken
            files[t.path] = await _service_account_token(
                client, facts, t.audience, t.expirationSeconds
            )
    return files


async def _files(client: AsyncClient, facts: PodFacts, spec: PodSpec, v: Volume) -> Files | None:
    """The files of a volume made of files; None for other kinds."""
    ns = facts.namespace
    if v.secret:
        name = v.secret.secretName or ""
        data = await secret_data(client, ns, name, bool(v.secret.optional))
        return _select(data, v.secret.items, f"secret {name}")
    if v.configMap:
        name = v.configMap.name or ""
        data = await config_map_data(client, ns, name, bool(v.configMap.optional))
        return _select(data, v.configMap.items, f"configmap {name}")
    if v.downwardAPI:
        return _downward(facts, spec, v.downwardAPI.items or [])
    if v.projected:
        return await _projected(client, facts, spec, v.projected.sources or [])
    return None


def _write(folder: Path, files: Files, mode: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)


def _host_path(path: str, kind: str | None) -> Path:
    host = Path(path)
    if kind == "DirectoryOrCreate":
        host.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not host.exists():
        host.parent.mkdir(parents=True, exist_ok=True)
        host.touch()
    elif kind in ("Directory", "File") and not host.exists():
        raise ConfigError(f"hostPath {path} does not exist")
    return host


async def prepare_volumes(
    client: AsyncClient, facts: PodFacts, spec: PodSpec, folder: Path
) -> dict[str, HostVolume]:
    """Each volume of the pod by name, made under ``folder``."""
    volumes: dict[str, HostVolume] = {}
    for v in spec.volumes or []:
        files = await _files(client, facts, spec, v)
        if files is not None:
            mode = 0o644
            for source in (v.secret, v.configMap, v.downwardAPI, v.projected):
                if source is not None and source.defaultMode is not None:
                    mode = source.defaultMode
            _write(folder / v.name, files, mode)
            volumes[v.name] = HostVolume(folder / v.name, read_only=True)
        elif v.emptyDir is not None:
            (folder / v.name).mkdir(parents=True, exist_ok=True)
            volumes[v.name] = HostVolume(folder / v.name, read_only=False)
        elif v.hostPath is not None:
            volumes[v.name] = HostVolume(_host_path(v.hostPath.path, v.hostPath.type), False)
        else:
            raise ConfigError(f"volume {v.name}: this kind of volume is not supported here")
    return volumes
