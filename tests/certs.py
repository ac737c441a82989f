"""Certificates for TLS tests: a root CA, an intermediate, leaves of any name and age."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    cn: str,
    issuer: Issued | None = None,
    ca: bool = False,
    hosts: tuple[str, ...] = (),
    not_after: dt.datetime | None = None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=2))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class Pki:
    """A root and an intermediate CA; ``leaf`` writes a served pair (leaf + intermediate)."""

    folder: Path
    root: Issued
    intermediate: Issued

    @classmethod
    def make(cls, folder: Path, name: str = "test") -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        root = issue(f"{name} root", ca=True)
        pki = cls(folder, root, issue(f"{name} intermediate", root, ca=True))
        (folder / "root.pem").write_bytes(root.pem())
        return pki

    @property
    def ca(self) -> Path:
        return self.folder / "root.pem"

    def leaf(
        self,
        name: str,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        not_after: dt.datetime | None = None,
    ) -> tuple[Path, Path, Issued]:
        leaf = issue(name, self.intermediate, hosts=hosts, not_after=not_after)
        cert, key = self.folder / f"{name}.pem", self.folder / f"{name}-key.pem"
        cert.write_bytes(leaf.pem() + self.intermediate.pem())
        key.write_bytes(leaf.key_pem())
        key.chmod(0o600)
        return cert, key, leaf
