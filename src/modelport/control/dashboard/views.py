"""What the pages show, shaped from the management API's own answers (pure, no I/O)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from modelport.spec import endpoint as rules

_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def replica_counts(view: Mapping[str, Any]) -> tuple[int, int]:
    """Ready of desired replicas, from a service or endpoint view's ``replicas``."""
    replicas = view.get("replicas") or []
    return sum(r.get("state") == "Ready" for r in replicas), len(replicas)


def reason(error: str | None) -> str | None:
    """An error in one line for a table: its first line and, for a traceback, the
    exception it ends in, which a cut after N characters would lose."""
    lines = [line.strip() for line in (error or "").strip().splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0].rstrip(":;")
    raised = [line for line in lines[1:] if _EXCEPTION.match(line)]
    return f"{first} … {raised[-1]}" if raised else first


def row(view: Mapping[str, Any], kind: str) -> dict[str, Any]:
    ready, desired = replica_counts(view)
    return {
        "kind": kind,
        "name": view["name"],
        "state": view["state"],
        "reason": reason(view.get("error")) if view["state"] != "Healthy" else None,
        "ready": ready,
        "desired": desired,
        "scoringUri": view["scoringUri"],
        "swaggerUri": view["swaggerUri"],
        "computeType": view.get("computeType"),
        "computeTarget": view.get("computeTarget", "local"),
    }


def model_usage(
    services: Iterable[Mapping[str, Any]], endpoints: Iterable[Mapping[str, Any]]
) -> dict[str, list[tuple[str, str]]]:
    """Model id -> the (kind, name) of each service and endpoint that serves it."""
    used: dict[str, list[tuple[str, str]]] = {}
    for kind, views in (("services", services), ("endpoints", endpoints)):
        for view in views:
            for model in view.get("models") or []:
                used.setdefault(model, []).append((kind, view["name"]))
    return used


def split_steps(current: Mapping[str, int], wanted: Mapping[str, int]) -> list[tuple[str, int]]:
    """The traffic changes to make one at a time, lowered percentages first: the total
    then never passes the larger of the old and the new, so no step is refused for a
    sum the whole change does not have."""
    changed = [(name, pct) for name, pct in wanted.items() if current.get(name) != pct]
    return sorted(changed, key=lambda step: step[1] - current.get(step[0], 0))


def checked_split(
    versions: list[rules.Version],
    wanted: Mapping[str, int],
    default: str | None,
    control: str | None,
) -> None:
    """The whole new split through the API's own rules (the sum, one default, one
    control) before any step is applied: a refused change applies nothing."""
    for name, pct in split_steps({v.name: v.traffic_percentile for v in versions}, wanted):
        versions = rules.update(versions, name, traffic_percentile=pct)
    if default:
        versions = rules.update(versions, default, is_default=True)
    if control:
        versions = rules.update(versions, control, is_control=True)


def curl_line(uri: str, body: str, header: str | None = None) -> str:
    """The same request from a shell; the key stays a variable, never on screen."""
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(uri)]
    parts += ["-H", "'Content-Type: application/json'"]
    parts += ["-H", '"Authorization: Bearer $KEY"']
    if header:
        parts += ["-H", shlex.quote(header)]
    parts += ["-d", shlex.quote(body)]
    return " ".join(parts)


def pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text
