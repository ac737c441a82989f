"""A kubeconfig file as the server takes it: one context, the files it names inlined.

What ``kubectl config view --minify --flatten --context C`` prints: the server may run
on another machine, so certificates, keys and token files named by path (relative
paths against the kubeconfig's folder, as kubectl reads them) travel as data. Commands
(``exec`` credentials) are left for the server to refuse with its reason. Messages
name fields and files, never what is in them.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from modelport.errors import ComputeTargetError

# file field -> (where, the field holding its data); tokenFile's text becomes token
_FILE_FIELDS = {
    "certificate-authority": ("cluster", "certificate-authority-data"),
    "client-certificate": ("user", "client-certificate-data"),
    "client-key": ("user", "client-key-data"),
    "tokenFile": ("user", "token"),
}


def flatten(path: str | os.PathLike[str], context: str | None = None) -> str:
    """The kubeconfig at ``path``, cut to ``context`` (default: its current context)."""
    source = Path(path).expanduser()
    try:
        document = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise ComputeTargetError(
            f"cannot read the kubeconfig {str(source)!r}: {exc.strerror}"
        ) from None
    except yaml.YAMLError:
        raise ComputeTargetError(f"the kubeconfig {str(source)!r} is not valid YAML") from None
    if not isinstance(document, dict):
        raise ComputeTargetError(f"the kubeconfig {str(source)!r} is not a YAML mapping")
    name = context or document.get("current-context")
    if not name:
        raise ComputeTargetError(
            f"the kubeconfig {str(source)!r} has no current context", hint="name one with context="
        )
    entry = _named(document, "contexts", name, source)
    parts = entry.get("context") or {}
    cluster = _named(document, "clusters", parts.get("cluster"), source)
    user = _named(document, "users", parts.get("user"), source) if parts.get("user") else None
    sections = {"cluster": cluster.get("cluster") or {}, "user": (user or {}).get("user") or {}}
    for field, (section, data_field) in _FILE_FIELDS.items():
        _inline(sections[section], field, data_field, source.parent)
    minified = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [entry],
        "clusters": [{**cluster, "cluster": sections["cluster"]}],
        "users": [{**user, "user": sections["user"]}] if user else [],
    }
    return yaml.safe_dump(minified, sort_keys=False)


def _named(document: dict[str, Any], kind: str, name: Any, source: Path) -> dict[str, Any]:
    """The last entry of that name (the one kubectl and lightkube use)."""
    found = [e for e in document.get(kind) or [] if isinstance(e, dict) and e.get("name") == name]
    if not found:
        what = kind[:-1]
        raise ComputeTargetError(f"the kubeconfig {str(source)!r} has no {what} {name!r}")
    return dict(found[-1])


def _inline(section: dict[str, Any], field: str, data_field: str, folder: Path) -> None:
    if not section.get(field):
        return
    path = Path(str(section.pop(field))).expanduser()
    path = path if path.is_absolute() else folder / path
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ComputeTargetError(
            f"cannot read {field} {str(path)!r} named by the kubeconfig: {exc.strerror}"
        ) from None
    if field == "tokenFile":
        section[data_field] = content.decode().strip()
    else:
        section[data_field] = base64.b64encode(content).decode()
