"""Open Inference Protocol (v2) REST paths, read the same way by router and replica.

``/v2``, ``/v2/health/live``, ``/v2/health/ready``, and per model (a service or an
endpoint here) ``/v2/models/{name}[/versions/{v}]`` with ``/ready`` or ``/infer``.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/v2"
SERVER, LIVE, READY = "server", "live", "ready"
MODEL, MODEL_READY, INFER = "model", "model_ready", "infer"
_MODELS = "/v2/models/"
_SERVER_PATHS = {"/v2": SERVER, "/v2/": SERVER, "/v2/health/live": LIVE, "/v2/health/ready": READY}
_ACTIONS = {(): MODEL, ("ready",): MODEL_READY, ("infer",): INFER}


@dataclass(frozen=True, slots=True)
class OipPath:
    kind: str
    model: str = ""
    version: str = ""  # "" when the path names none


def parse(path: str) -> OipPath | None:
    """The route ``path`` names, or None when it is no OIP path."""
    kind = _SERVER_PATHS.get(path)
    if kind is not None:
        return OipPath(kind)
    if not path.startswith(_MODELS):
        return None
    name, *tail = path[len(_MODELS) :].split("/")
    version = ""
    if tail[:1] == ["versions"]:
        if len(tail) < 2 or not tail[1]:
            return None
        version, tail = tail[1], tail[2:]
    action = _ACTIONS.get(tuple(tail))
    if not name or action is None:
        return None
    return OipPath(action, name, version)


def model_path(oip: OipPath, version: str) -> str:
    """The path of ``oip``'s model route at ``version`` ("": none), as a replica gets it."""
    base = f"{_MODELS}{oip.model}" + (f"/versions/{version}" if version else "")
    return base + {MODEL: "", MODEL_READY: "/ready", INFER: "/infer"}[oip.kind]
