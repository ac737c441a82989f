"""How the SDK and CLI trust HTTPS servers, and what a refused certificate says.

The CA bundle comes from, first to last: the ``ca_bundle`` argument,
``$MODELPORT_CA_BUNDLE``, the workspace config's ``caBundle`` (written by ``modelport
up --tls self-signed``); without one the system's trusted CAs are used.  Certificates
are always verified: there is no setting that turns it off.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from modelport.errors import InvalidInputError, TlsError

CA_BUNDLE_VARIABLE = "MODELPORT_CA_BUNDLE"
_HINT = (
    "trust the server's CA with MODELPORT_CA_BUNDLE=<file> or caBundle in config.json "
    "(`modelport up --tls self-signed` prints its path)"
)


def client_context(
    ca_bundle: str | Path | None = None, configured: str | None = None
) -> ssl.SSLContext:
    """A verifying client context: the argument's, the variable's, the config's
    (``configured``) or the system's trust, the first given."""
    bundle = ca_bundle or os.environ.get(CA_BUNDLE_VARIABLE) or configured or None
    if bundle is None:
        return ssl.create_default_context()
    path = Path(bundle).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"the CA bundle {path} does not exist") from exc
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInputError(f"the CA bundle {path} is not a PEM file of CAs: {exc}") from exc


def tls_failure(exc: httpx.TransportError, url: str) -> TlsError | None:
    """The TLS error behind a failed request, named for its host; None if it was not TLS."""
    cause = _ssl_cause(exc)
    if cause is None:
        return None
    host = urlsplit(url).netloc or url
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or cause.reason or str(cause)
        return TlsError(f"the certificate of {host} is not trusted: {reason}", hint=_HINT)
    reason = cause.reason or str(cause)
    return TlsError(f"TLS with {host} failed: {reason}")


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
