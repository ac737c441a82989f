"""A container's environment and command line, built as the kubelet builds them.

The image is not used: the host stands in for it, so the "image environment" is the
host's PATH with this interpreter's folder first (``python`` is the project's venv).
Then come the service variables for the API server, ``envFrom``, and ``env`` in order,
each value expanded with ``$(VAR)`` from what was defined before it; command and args
are expanded with the whole container environment.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from fractions import Fraction

from lightkube import AsyncClient
from lightkube.models.core_v1 import Container, EnvVarSource, ResourceFieldSelector

from tests.kube.refs import ConfigError, PodFacts, config_map_data, key_of, secret_data

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUFFIXES: dict[str, int | Fraction] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
QUANTITY = re.compile(r"([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (close := text.find(")", i + 2)) != -1:
            name = text[i + 2 : close]
            out.append(env.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append("$")
            i += 1
    return "".join(out)


def parse_quantity(text: str) -> Fraction:
    match = QUANTITY.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"invalid quantity {text!r}")
    number = Fraction(match[1])
    if match[2]:
        return number * Fraction(10) ** int(match[2])
    return number * SUFFIXES[match[3] or ""]


def image_env(pod_name: str) -> dict[str, str]:
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:{HOST_PATH}",
        "HOSTNAME": pod_name,
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }


def service_env(api_host: str, api_port: int) -> dict[str, str]:
    """The variables of the ``kubernetes`` Service, pointing at the real API server."""
    tcp = f"tcp://{api_host}:{api_port}"
    prefix = f"KUBERNETES_PORT_{api_port}_TCP"
    return {
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": tcp,
        prefix: tcp,
        f"{prefix}_PROTO": "tcp",
        f"{prefix}_PORT": str(api_port),
        f"{prefix}_ADDR": api_host,
    }


def resource_field(container: Container, ref: ResourceFieldSelector) -> str:
    kind, _, resource = ref.resource.partition(".")
    resources = container.resources
    values = (resources.limits if kind == "limits" else resources.requests) if resources else None
    raw = (values or {}).get(resource)
    if raw is None:
        raise ConfigError(f"{ref.resource} is not set on container {container.name}")
    divisor = parse_quantity(str(ref.divisor)) if ref.divisor else Fraction(1)
    return str(math.ceil(parse_quantity(str(raw)) / divisor))


async def _value_from(
    client: AsyncClient, facts: PodFacts, container: Container, source: EnvVarSource
) -> str | None:
    if source.fieldRef:
        return facts.field(source.fieldRef.fieldPath)
    if source.resourceFieldRef:
        return resource_field(container, source.resourceFieldRef)
    if source.secretKeyRef:
        ref = source.secretKeyRef
        optional = bool(ref.optional)
        data = await secret_data(client, facts.namespace, ref.name or "", optional)
        return key_of(data, "secret", ref.name or "", ref.key, optional)
    if source.configMapKeyRef:
        ref2 = source.configMapKeyRef
        optional = bool(ref2.optional)
        data = await config_map_data(client, facts.namespace, ref2.name or "", optional)
        return key_of(data, "configmap", ref2.name or "", ref2.key, optional)
    raise ConfigError("unsupported valueFrom")


async def container_env(
    client: AsyncClient, facts: PodFacts, container: Container, services: dict[str, str]
) -> dict[str, str]:
    """The variables the container itself defines, with the service variables under them."""
    defined = dict(services)
    for source in container.envFrom or []:
        prefix = source.prefix or ""
        if source.configMapRef:
            ref = source.configMapRef
            data = await config_map_data(
                client, facts.namespace, ref.name or "", bool(ref.optional)
            )
        elif source.secretRef:
            ref2 = source.secretRef
            data = await secret_data(client, facts.namespace, ref2.name or "", bool(ref2.optional))
        else:
            continue
        for key, raw in (data or {}).items():
            defined[prefix + key] = raw.decode(errors="replace")
    for var in container.env or []:
        if var.valueFrom:
            value = await _value_from(client, facts, container, var.valueFrom)
            if value is None:
                continue
        else:
            value = expand(var.value or "", defined)
        defined[var.name] = value
    return defined


def command_line(container: Container, env: Mapping[str, str]) -> list[str]:
    """command + args, expanded. With no command the "image entrypoint" is the args alone."""
    argv = [expand(part, env) for part in (container.command or []) + (container.args or [])]
    if not argv:
        raise ConfigError(
            f"container {container.name} has no command: the node agent has no image entrypoint"
        )
    return argv
