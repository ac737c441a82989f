"""The server's TLS settings (``modelport up --tls ...``), checked once at start.

``--tls-cert``/``--tls-key`` name PEM files the operator keeps (a chain is allowed
after the leaf); ``--tls self-signed`` makes and renews a local CA's certificate
(``control/certificates.py``).  The same certificate serves the router's scoring
port and, unless ``--no-api-tls``, the management API.  Only paths travel to the
router's processes, never the key itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.control import certificates
from modelport.errors import InvalidInputError
from modelport.tls import DEFAULT_PLAIN_HTTP, PLAIN_HTTP_MODES, TlsFileError, server_context

log = logging.getLogger("modelport.control")
SELF_SIGNED = "self-signed"


@dataclass(frozen=True)
class TlsSettings:
    cert: Path
    key: Path
    plain_http: str = DEFAULT_PLAIN_HTTP
    ca_bundle: Path | None = None  # what clients on this machine trust (config.json caBundle)
    self_signed: bool = False
    api: bool = True  # the management API serves TLS too

    def router_env(self) -> dict[str, str]:
        return {
            "MODELPORT_ROUTER_TLS_CERT": str(self.cert),
            "MODELPORT_ROUTER_TLS_KEY": str(self.key),
            "MODELPORT_ROUTER_PLAIN_HTTP": self.plain_http,
        }

    def record(self) -> dict[str, Any]:
        """What a running router must match to be adopted (``router.json``)."""
        return {"cert": str(self.cert), "key": str(self.key), "plainHttp": self.plain_http}


def tls_settings(
    home: Path,
    mode: str | None,
    cert: str | None,
    key: str | None,
    ca_bundle: str | None,
    plain_http: str | None,
    api: bool,
    hosts: list[str],
) -> TlsSettings | None:
    """The settings the flags ask for, or None for plain HTTP; a bad combination or a
    file that cannot serve is refused here, before anything starts."""
    if mode is None and cert is None and key is None:
        for flag, value in (("--tls-ca", ca_bundle), ("--plain-http", plain_http)):
            if value is not None:
                raise InvalidInputError(
                    f"{flag} needs TLS: add --tls-cert/--tls-key or --tls self-signed"
                )
        return None
    plain = plain_http or DEFAULT_PLAIN_HTTP
    if plain not in PLAIN_HTTP_MODES:
        raise InvalidInputError(f"--plain-http must be one of {', '.join(PLAIN_HTTP_MODES)}")
    if mode is not None:
        if mode != SELF_SIGNED:
            raise InvalidInputError(
                f"--tls takes {SELF_SIGNED!r} (or give --tls-cert and --tls-key)"
            )
        if cert or key or ca_bundle:
            raise InvalidInputError(
                "--tls self-signed makes its own certificate: drop --tls-cert/--tls-key/--tls-ca"
            )
        made, why = certificates.ensure(home / "tls", hosts)
        if why is not None:
            log.info("issued the self-signed server certificate (%s)", why)
        return TlsSettings(made.cert, made.key, plain, made.ca, True, api)
    if not cert or not key:
        raise InvalidInputError("--tls-cert and --tls-key go together")
    paths = [Path(p).expanduser().resolve() for p in (cert, key)]
    try:
        server_context(str(paths[0]), str(paths[1]))
    except TlsFileError as exc:
        raise InvalidInputError(f"cannot serve TLS: {exc}") from exc
    if paths[1].stat().st_mode & 0o077:
        log.warning("the TLS key %s can be read by other users: chmod 600 it", paths[1])
    bundle = Path(ca_bundle).expanduser().resolve() if ca_bundle else None
    if bundle is not None and not bundle.is_file():
        raise InvalidInputError(f"--tls-ca {ca_bundle}: no such file")
    return TlsSettings(paths[0], paths[1], plain, bundle, False, api)


def renew(home: Path, hosts: list[str]) -> None:
    """The periodic check of a self-signed certificate (files replaced if due)."""
    try:
        _, why = certificates.ensure(home / "tls", hosts)
    except OSError as exc:
        log.error("cannot renew the self-signed certificate: %s", exc)
        return
    if why is not None:
        log.info("renewed the self-signed server certificate (%s)", why)
