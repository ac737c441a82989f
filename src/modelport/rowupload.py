"""Rows of model data sent to the control plane, by a process with no disk of its own.

On a Kubernetes target a pod's disk goes with the pod, so a replica's
``ModelDataCollector`` and a router's capture write each batch of their
``rowsink.Sink`` by posting it to the management API (``control/api_ingest.py``),
which appends it to the same partitions the local target writes.  This runs on the
sink's thread, never on a request's: a control plane that is away (restarting) is
tried again with backoff while the sink's bounded buffer holds new rows (and counts
what it must drop); a refused batch is logged and counted by the sink as failed.

The destination comes from the pod spec: ``<PREFIX>_URL`` (the pod's ingest
address), ``<PREFIX>_TOKEN`` (its credential, taken out of the environment: a
replica's entry script never sees it) and, for a management API with a private CA,
``<PREFIX>_CA`` (PEM).  The credential expires; it is exchanged for a fresh one
after half its life.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from modelport.rowsink import Rows

log = logging.getLogger("modelport.modeldata")

REPLICA = "MODELPORT_MODELDATA"  # a replica's variables: REPLICA + "_URL", ...
ROUTER = "MODELPORT_CAPTURE"  # a router pod's
MAX_BODY = 4 << 20  # larger batches go in parts (the control plane takes up to 16 MiB)
ATTEMPTS = 6  # 0.5 + 1 + 2 + 4 + 8 s apart: a control plane restart is waited out
FIRST_BACKOFF_S = 0.5
TIMEOUT_S = 30.0
RENEW_EVERY_S = 30.0  # at most one renewal attempt this often while it fails
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Destination:
    url: str  # .../api/v1/ingest/<service>/<generation> (or routers/<target>)
    token: str
    ca: str | None = None

    @classmethod
    def take(cls, environ: MutableMapping[str, str], prefix: str) -> Destination | None:
        """The destination the pod spec names, its secrets removed from ``environ``."""
        token = environ.pop(f"{prefix}_TOKEN", "")
        ca = environ.pop(f"{prefix}_CA", None)
        url = environ.get(f"{prefix}_URL", "")
        if not (url and token):
            return None
        return cls(url.rstrip("/"), token, ca or None)


class Refused(OSError):
    """The control plane answered no (not something waiting would change)."""


class Uploader:
    """``write`` for a ``rowsink.Sink``: one POST to ``<url>/<kind>`` per part of a
    batch, naming its partition (the file's folder, relative)."""

    def __init__(
        self,
        destination: Destination,
        kind: str = "modeldata",
        clock: Callable[[], float] = time.time,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = destination.url
        self.kind = kind
        self._token = destination.token
        self._refresh_at = refresh_time(destination.token)
        self._renew_tried = 0.0
        self._clock = clock
        self._pause = pause
        self._context = (
            ssl.create_default_context(cadata=destination.ca) if destination.ca else None
        )

    def write(self, batch: Rows) -> None:
        self._renew_if_due()
        partition = batch.path.parent.as_posix()
        for body in bodies(partition, list(batch.header), batch.rows):
            self._post(f"{self.url}/{self.kind}", body)

    def send(self, kind: str, body: bytes) -> None:
        """POST ``body`` as it is to ``<url>/<kind>`` (the router's request log lines)."""
        self._renew_if_due()
        self._post(f"{self.url}/{kind}", body)

    def _renew_if_due(self) -> None:
        now = self._clock()
        if now < self._refresh_at or now - self._renew_tried < RENEW_EVERY_S:
            return
        self._renew_tried = now
        try:
            answer = json.loads(self._request(f"{self.url}/credential", b"{}"))
            self._token = str(answer["token"])
            self._refresh_at = float(answer["refresh_at"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("model data collection: renewing the credential failed: %s", exc)

    def _post(self, url: str, body: bytes) -> None:
        wait = FIRST_BACKOFF_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._request(url, body)
                return
            except Refused:
                raise
            except OSError as exc:
                if attempt == ATTEMPTS:
                    raise OSError(f"the control plane took no model data: {exc}") from exc
                log.info("model data collection: %s; trying again in %g s", exc, wait)
                self._pause(wait)
                wait *= 2

    def _request(self, url: str, body: bytes) -> bytes:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._context) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise OSError(f"HTTP {exc.code}") from None
            raise Refused(f"HTTP {exc.code}: {_message(exc)}") from None


def bodies(partition: str, header: list[str], rows: list[list[Any]]) -> list[bytes]:
    """The JSON bodies of one batch: halved until each is under ``MAX_BODY`` (a single
    row goes as it is).  Values are what the CSV writer would print of them."""
    plain = [[v if isinstance(v, _PLAIN) else str(v) for v in row] for row in rows]
    return _split(partition, header, plain)


def _split(partition: str, header: list[str], rows: list[list[Any]]) -> list[bytes]:
    body = json.dumps(
        {"partition": partition, "header": header, "rows": rows}, separators=(",", ":")
    ).encode()
    if len(body) <= MAX_BODY or len(rows) <= 1:
        return [body]
    half = len(rows) // 2
    return _split(partition, header, rows[:half]) + _split(partition, header, rows[half:])


def refresh_time(token: str) -> float:
    """When to exchange ``token``: half way from its issue to its expiry (its claims are
    read, not verified: the control plane verifies them)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0  # unreadable: try a renewal at once (the control plane says why not)
    return issued + (expires - issued) / 2


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])[:300]
    except (OSError, ValueError, KeyError, TypeError):
        return exc.reason if isinstance(exc.reason, str) else "refused"
