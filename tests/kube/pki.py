"""Keys and certificates for a test cluster, made with the ``openssl`` command.

One CA signs the API server's and the node agent's serving certificates, so a pod's
service-account ``ca.crt`` verifies the API server at ``https://127.0.0.1:PORT`` as an
in-cluster client would. The service-account signing key pair is separate.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "3650"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_ca(folder: Path) -> KeyPair:
    pair = KeyPair(folder / "ca.crt", folder / "ca.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS,
        "-keyout", str(pair.key), "-out", str(pair.cert),
        "-subj", "/CN=kube-harness-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return pair


def make_serving_cert(
    folder: Path, name: str, ca: KeyPair, ips: list[str], dns: list[str]
) -> KeyPair:
    """A server certificate for ``ips`` and ``dns`` names, signed by ``ca``."""
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    csr = folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
    ext.write_text(
        f"subjectAltName={','.join(sans)}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", DAYS, "-extfile", str(ext), "-out", str(pair.cert),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return pair


def make_service_account_keys(folder: Path) -> KeyPair:
    """The key that signs service-account tokens (``key``) and its public half (``cert``)."""
    pair = KeyPair(folder / "sa.pub", folder / "sa.key")
    _openssl("genrsa", "-out", str(pair.key), "2048")
    _openssl("rsa", "-in", str(pair.key), "-pubout", "-out", str(pair.cert))
    return pair
