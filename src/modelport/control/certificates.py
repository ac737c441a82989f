"""``--tls self-signed``: a local CA and a server certificate signed by it, kept fresh.

The CA (``tls/ca.pem``, its key ``tls/ca-key.pem``) is what clients trust: the
server records its path in ``config.json`` as ``caBundle`` and prints it at
``up``.  The server certificate (``tls/server.pem``, ``tls/server-key.pem``) names
localhost, 127.0.0.1, ::1, this host's name and the addresses the server
listens on, lives ``SERVER_DAYS`` and is issued again ``RENEW_BEFORE`` ahead of
its end, at start and by a check while the server runs.  The router and the
management API reload the files when they change, so a renewal drops no
connection.  Keys are EC P-256, written 0600 in a 0700 folder, each file
replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 90
RENEW_BEFORE = dt.timedelta(days=30)
RENEW_CHECK_S = 3600.0
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class SelfSigned:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def key(self) -> Path:
        return self.folder / "server-key.pem"


def default_hosts(*listening: str) -> list[str]:
    """The names a client of this machine may use: loopback, the host name, the
    addresses the server listens on (a wildcard adds nothing)."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    names += [h for h in listening if h not in _WILDCARD_HOSTS]
    return list(dict.fromkeys(n.lower() for n in names if n))


def renewal_reason(
    cert: x509.Certificate | None, ca: x509.Certificate, hosts: Iterable[str], now: dt.datetime
) -> str | None:
    """Why the server certificate must be issued again, or None while it is good."""
    if cert is None:
        return "there is none yet"
    if cert.issuer != ca.subject or _authority_key(cert) != _subject_key(ca):
        return "the CA changed"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"it ends on {cert.not_valid_after_utc:%Y-%m-%d}"
    missing = set(hosts) - _names(cert)
    if missing:
        return f"it does not name {', '.join(sorted(missing))}"
    return None


def ensure(
    folder: Path, hosts: list[str], now: dt.datetime | None = None
) -> tuple[SelfSigned, str | None]:
    """Create the CA and the server certificate if needed, renew what is due; returns
    the files and why the server certificate was issued (None: kept)."""
    now = now or dt.datetime.now(dt.UTC)
    files = SelfSigned(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca, ca_key = _load_ca(files, now)
    if ca is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue_ca(ca_key, now)
        _write(files.ca_key, _key_pem(ca_key), 0o600)
        _write(files.ca, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    reason = renewal_reason(_load_cert(files.cert), ca, hosts, now)
    if reason is not None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue_server(key, ca, ca_key, hosts, now)
        # The key first: a watcher that sees the new certificate before its key keeps
        # the old pair and loads the new one at its next look.
        _write(files.key, _key_pem(key), 0o600)
        _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files, reason


def _load_ca(
    files: SelfSigned, now: dt.datetime
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    ca = _load_cert(files.ca)
    try:
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    except (OSError, ValueError):
        return None, None
    if ca is None or not isinstance(key, ec.EllipticCurvePrivateKey):
        return None, None
    if ca.not_valid_after_utc - now < RENEW_BEFORE or ca.public_key() != key.public_key():
        return None, None
    return ca, key


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _issue_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelport"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"modelport local CA ({socket.gethostname()})"),
        ]
    )
    return (
        _builder(name, name, key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_server(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
    now: dt.datetime,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return (
        _builder(subject, ca.subject, key.public_key(), now, SERVER_DAYS)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return {n.lower() for n in (*dns, *ips)}


def _subject_key(cert: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _authority_key(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
    os.replace(tmp, path)
