"""Server-side TLS shared by the router and the management API: one context policy,
and certificate files that are reloaded when they change.

The context is the ssl module's default for servers (``Purpose.CLIENT_AUTH``: no
compression, its cipher choice, single-use (EC)DH keys) with TLS 1.2 as the
floor and ALPN ``http/1.1``.  A reload builds a whole new context from the files
and only replaces the one in use if that succeeded, so a half-written pair (new
certificate, old key) never breaks the server: it keeps the old pair and tries
again when the files change once more.  Connections already open keep the
context they were made with; only new handshakes see the new certificate.
"""

from __future__ import annotations

import logging
import os
import ssl

log = logging.getLogger("modelport.tls")
ALPN = ["http/1.1"]
PLAIN_HTTP_MODES = ("off", "redirect")
DEFAULT_PLAIN_HTTP = "off"
WATCH_INTERVAL_S = 2.0


class TlsFileError(ValueError):
    """A certificate or key file that cannot be used (the message says which and why)."""


def _refuse_password() -> str:
    # Without this OpenSSL would prompt on the terminal for an encrypted key.
    raise TlsFileError("the private key is encrypted; give an unencrypted PEM key (mode 0600)")


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context serving ``cert`` (PEM, leaf first, then its chain) with ``key``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    try:
        context.load_cert_chain(cert, key, password=_refuse_password)
    except FileNotFoundError as exc:
        raise TlsFileError(f"no such file: {exc.filename}") from exc
    except ssl.SSLError as exc:  # before OSError, its base class
        reason = exc.reason or str(exc)
        raise TlsFileError(f"{cert} / {key}: not a PEM certificate and its key ({reason})") from exc
    except OSError as exc:
        raise TlsFileError(f"cannot read {exc.filename or cert}: {exc.strerror or exc}") from exc
    return context


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class CertificateFiles:
    """A certificate/key pair on disk and the context made from it.

    ``check()`` reloads when either file changed (renamed over, rewritten);
    ``reload()`` does so unconditionally (SIGHUP).  ``on_reload`` is called with
    each new context (the management API copies it into uvicorn's).
    """

    def __init__(self, cert: str, key: str) -> None:
        self.cert = cert
        self.key = key
        self._seen = self._signatures()
        self.context = server_context(cert, key)
        self.reloads = 0

    def front(self) -> ssl.SSLContext:
        """A context for a server that holds on to one (uvicorn): each handshake it
        starts switches to the context in use now (the SNI callback runs for every
        ClientHello, with or without a server name)."""
        context = server_context(self.cert, self.key)
        context.sni_callback = self._switch
        return context

    def _switch(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        connection.context = self.context

    def _signatures(self) -> tuple[object, ...]:
        return (_signature(self.cert), _signature(self.key))

    def check(self) -> bool:
        seen = self._signatures()
        if seen == self._seen:
            return False
        self._seen = seen
        return self.reload()

    def reload(self) -> bool:
        try:
            self.context = server_context(self.cert, self.key)
        except TlsFileError as exc:
            log.error("keeping the certificate in use: %s", exc)
            return False
        self.reloads += 1
        log.info("loaded the certificate %s for new connections", self.cert)
        return True

    def __repr__(self) -> str:
        return f"CertificateFiles(cert={self.cert!r}, reloads={self.reloads})"
