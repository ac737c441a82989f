"""TLS decisions without a server: the self-signed CA and its renewal, the flags,
the plain-HTTP answer, certificate reloads, client trust, v1's sslEnabled."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import stat
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from modelport.control import certificates
from modelport.control.tls import tls_settings
from modelport.errors import InvalidInputError
from modelport.router.listener import plain_answer
from modelport.sdk.tls import CA_BUNDLE_VARIABLE, client_context, tls_failure
from modelport.spec.deployment import AciServiceDeploymentConfiguration
from modelport.spec.support import SSL_WARNING, Target, deployment_warnings, tls_refusal
from modelport.tls import CertificateFiles, TlsFileError, server_context
from tests.certs import Pki

HOSTS = ["localhost", "127.0.0.1", "::1", "box.example"]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def test_self_signed_files_are_private_and_name_the_hosts(tmp_path: Path) -> None:
    files, why = certificates.ensure(tmp_path / "tls", HOSTS, NOW)
    assert why == "there is none yet"
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    for key in (files.key, files.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server, ca = cert_of(files.cert), cert_of(files.ca)
    assert names(server) == set(HOSTS)
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    assert server.not_valid_after_utc - NOW == dt.timedelta(days=certificates.SERVER_DAYS)
    server_context(str(files.cert), str(files.key))  # a pair that serves


def test_renewal_before_the_end_keeps_the_ca(tmp_path: Path) -> None:
    files, _ = certificates.ensure(tmp_path, HOSTS, NOW)
    first, ca = files.cert.read_bytes(), files.ca.read_bytes()
    assert certificates.ensure(tmp_path, HOSTS, NOW + dt.timedelta(days=30))[1] is None
    assert files.cert.read_bytes() == first
    later = NOW + dt.timedelta(days=certificates.SERVER_DAYS - 29)
    _, why = certificates.ensure(tmp_path, HOSTS, later)
    assert why is not None and why.startswith("it ends on")
    assert files.cert.read_bytes() != first and files.ca.read_bytes() == ca
    assert cert_of(files.cert).not_valid_after_utc > later + certificates.RENEW_BEFORE


def test_a_new_host_or_a_new_ca_issues_again(tmp_path: Path) -> None:
    files, _ = certificates.ensure(tmp_path, HOSTS, NOW)
    _, why = certificates.ensure(tmp_path, [*HOSTS, "10.0.0.7"], NOW)
    assert why == "it does not name 10.0.0.7"
    files.ca_key.unlink()
    _, why = certificates.ensure(tmp_path, HOSTS, NOW)
    assert why == "the CA changed"
    assert cert_of(files.cert).issuer == cert_of(files.ca).subject


def test_flags_are_checked_before_anything_starts(tmp_path: Path) -> None:
    def settings(**given: object):  # type: ignore[no-untyped-def]
        args: dict[str, object] = {
            "mode": None,
            "cert": None,
            "key": None,
            "ca_bundle": None,
            "plain_http": None,
            "api": True,
        }
        return tls_settings(tmp_path, hosts=HOSTS, **{**args, **given})  # type: ignore[arg-type]

    assert settings() is None
    for given, says in [
        ({"plain_http": "redirect"}, "--plain-http needs TLS"),
        ({"cert": "c.pem"}, "--tls-cert and --tls-key go together"),
        ({"mode": "self-signed", "cert": "c.pem"}, "drop --tls-cert"),
        ({"mode": "acme"}, "--tls takes 'self-signed'"),
        ({"cert": "missing.pem", "key": "k.pem"}, "no such file"),
    ]:
        with pytest.raises(InvalidInputError, match=says):
            settings(**given)
    made = settings(mode="self-signed", plain_http="redirect")
    assert made is not None and made.self_signed and made.plain_http == "redirect"
    assert made.ca_bundle == tmp_path / "tls" / "ca.pem"
    assert made.router_env()["MODELPORT_ROUTER_TLS_KEY"] == str(tmp_path / "tls" / "server-key.pem")
    assert all("PRIVATE" not in v for v in made.router_env().values())


def test_an_encrypted_or_mismatched_key_is_refused(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    cert, _, leaf = pki.leaf("one")
    _, other_key, _ = pki.leaf("two")
    with pytest.raises(TlsFileError, match="not a PEM certificate and its key"):
        server_context(str(cert), str(other_key))
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsFileError, match="encrypted"):
        server_context(str(cert), str(locked))


def test_reloads_take_a_whole_good_pair_only(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    cert, key, _ = pki.leaf("one")
    files = CertificateFiles(str(cert), str(key))
    first = files.context
    assert files.check() is False and files.context is first
    two_cert, two_key, _ = pki.leaf("two")
    os.replace(two_cert, cert)  # the certificate before its key: a mismatched pair
    assert files.check() is False and files.context is first
    os.replace(two_key, key)
    assert files.check() is True and files.context is not first
    assert files.context.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("head", "location"),
    [
        (
            b"POST /api/v1/service/a/score?x=1 HTTP/1.1\r\nHost: box.example:80",
            b"https://box.example:7371/api/v1/service/a/score?x=1",
        ),
        (b"GET / HTTP/1.1\r\nhost: [::1]:9", b"https://[::1]:7371/"),
        (b"GET /x HTTP/1.1\r\nHost: evil.example/@x", b"https://127.0.0.1:7371/x"),
        (b"GET http://evil.example/ HTTP/1.1", b"https://127.0.0.1:7371/"),
    ],
)
def test_plain_http_is_redirected_to_this_port_over_https(head: bytes, location: bytes) -> None:
    answer = plain_answer("redirect", head, 7371)
    assert answer.startswith(b"HTTP/1.1 308 ")
    assert b"\r\nlocation: " + location + b"\r\n" in answer
    assert b"connection: close" in answer


def test_plain_http_off_names_the_https_address() -> None:
    answer = plain_answer("off", b"GET /x HTTP/1.1\r\nHost: localhost", 7371)
    assert answer.startswith(b"HTTP/1.1 400 ")
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "https_required"
    assert "https://localhost:7371/x" in body["error"]["message"]


def test_client_trust_comes_from_the_argument_the_variable_or_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = Pki.make(tmp_path)
    monkeypatch.delenv(CA_BUNDLE_VARIABLE, raising=False)
    system = client_context()
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    configured = client_context(None, str(pki.ca))
    assert [c["subject"] for c in configured.get_ca_certs()] == [((("commonName", "test root"),),)]
    monkeypatch.setenv(CA_BUNDLE_VARIABLE, str(tmp_path / "nowhere.pem"))
    with pytest.raises(InvalidInputError, match=r"nowhere\.pem does not exist"):
        client_context(None, str(pki.ca))  # the variable comes before the config
    assert len(client_context(pki.ca, None).get_ca_certs()) == 1  # the argument before both


def test_only_tls_failures_become_tls_errors() -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    refused.verify_message = "certificate has expired"
    wrapped = httpx.ConnectError("boom")
    wrapped.__cause__ = refused
    error = tls_failure(wrapped, "https://svc.example:8443/score")
    assert error is not None
    assert (
        error.message
        == "the certificate of svc.example:8443 is not trusted: certificate has expired"
    )
    assert tls_failure(httpx.ConnectError("connection refused"), "https://x") is None


def test_v1_ssl_enabled_is_served_by_the_servers_certificate_or_refused() -> None:
    config = AciServiceDeploymentConfiguration(
        ssl_enabled=True, ssl_cert_pem_file="c.pem", ssl_key_pem_file="k.pem", ssl_cname="x.y"
    )
    assert tls_refusal(config, tls=True) is None
    refused = tls_refusal(config, tls=False)
    assert refused is not None and "modelport up --tls self-signed" in refused
    assert SSL_WARNING in deployment_warnings(config, Target())
    assert tls_refusal(AciServiceDeploymentConfiguration(), tls=False) is None
