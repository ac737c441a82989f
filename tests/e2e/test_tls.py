"""``modelport up --tls self-signed`` as a user meets it: the CLI and SDK over HTTPS,
https scoring URIs, v1's sslEnabled, and a clear error for an untrusted server."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modelport import AciWebservice, Model, Webservice, Workspace
from modelport.errors import TlsError
from modelport.home import read_config
from modelport.spec.support import SSL_WARNING
from tests.certs import Pki
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.e2e.test_services import source


def test_a_self_signed_server_is_trusted_by_its_clients_on_this_machine(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    started = cli("up", "--detach", "--port", "0", "--router-port", "0", "--tls", "self-signed")
    assert started.code == 0, started.err
    home = tmp_path / "home"
    bundle = home / "tls" / "ca.pem"
    assert f"CA bundle {bundle}" in started.out.replace("\n", "")
    config = read_config(home / "config.json")
    assert config["url"].startswith("https://127.0.0.1:")
    assert config["routerUrl"].startswith("https://127.0.0.1:")
    assert config["caBundle"] == str(bundle)

    with Workspace.from_config(home) as ws:
        folder = tmp_path / "scaler"
        folder.mkdir()
        (folder / "w.json").write_text('{"scale": 10}')
        model = Model.register(ws, folder, "scaler")
        for pem in ("c.pem", "k.pem"):  # v1 checks they exist; the server's pair serves
            (tmp_path / pem).write_text("-----BEGIN-----\n")
        tls = AciWebservice.deploy_configuration(
            ssl_enabled=True,
            ssl_cert_pem_file=str(tmp_path / "c.pem"),
            ssl_key_pem_file=str(tmp_path / "k.pem"),
            ssl_cname="x.y",
        )
        service = Model.deploy(ws, "tls-svc", [model], source(tmp_path), tls)
        service.wait_for_deployment()
        assert SSL_WARNING in service.warnings
        assert service.scoring_uri.startswith(config["routerUrl"])
        assert service.swagger_uri.startswith("https://")
        assert service.run({"x": [1, 2]})["y"] == [10, 20]  # the SDK scores over https
        key = service.get_keys()[0]
        curl = subprocess.run(
            ["curl", "-sS", "--cacert", str(bundle), "-H", f"Authorization: Bearer {key}",
             "-H", "Content-Type: application/json", "-d", '{"x": [3]}', service.scoring_uri],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["y"] == [30]

    listed = cli("service", "list", "-o", "json")
    assert listed.code == 0, listed.err
    assert [s["scoringUri"] for s in listed.json()] == [service.scoring_uri]

    # Without the CA the certificate is refused, clearly, by the CLI and the SDK.
    stranger = Pki.make(tmp_path / "stranger", "stranger").ca
    cli.env["MODELPORT_CA_BUNDLE"] = str(stranger)
    refused = cli("service", "list")
    port = config["url"].rsplit(":", 1)[1]
    assert refused.code == 11
    assert f"Error: the certificate of 127.0.0.1:{port} is not trusted: " in refused.err
    with pytest.raises(TlsError, match="unable to get local issuer certificate"):
        Workspace(config["url"], config["token"]).get_details()  # the system's CAs only
    with Workspace(config["url"], config["token"], ca_bundle=bundle) as ws:
        with pytest.raises(TlsError, match=r"the certificate of 127\.0\.0\.1:\d+ is not trusted"):
            Webservice(Workspace.from_config(home, ca_bundle=stranger), "tls-svc")
        assert Webservice(ws, "tls-svc").run({"x": [1]})["y"] == [10]


def test_the_management_api_serves_the_operators_certificate_and_reloads_it(
    tmp_path: Path,
) -> None:
    pki = Pki.make(tmp_path / "pki")
    first_cert, first_key, _ = pki.leaf("api-one")
    served = tmp_path / "served.pem", tmp_path / "served-key.pem"

    def install(cert: Path, key: Path) -> None:
        for source_file, target in ((key, served[1]), (cert, served[0])):
            tmp = target.with_suffix(".new")
            tmp.write_bytes(source_file.read_bytes())
            tmp.chmod(0o600)
            os.replace(tmp, target)

    install(first_cert, first_key)
    args = ("--tls-cert", str(served[0]), "--tls-key", str(served[1]), "--tls-ca", str(pki.ca))
    server = ServerProcess(tmp_path / "home", args=(*args, "--plain-http", "redirect"))
    try:
        config = read_config(server.home / "config.json")
        assert config["url"].startswith("https://") and config["caBundle"] == str(pki.ca)
        port = int(config["url"].rsplit(":", 1)[1])
        assert served_name(port, pki.ca) == "api-one"
        with Workspace.from_config(server.home) as ws:
            assert ws.get_details()  # one keep-alive connection, made with api-one
            second_cert, second_key, _ = pki.leaf("api-two")
            install(second_cert, second_key)
            wait_for(lambda: served_name(port, pki.ca) == "api-two", what="the new certificate")
            assert ws.get_details()  # the open connection goes on
        listed = subprocess.run(
            [sys.executable, "-m", "modelport", "service", "list"],
            env={**server.env, "MODELPORT_CA_BUNDLE": ""},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        plain = httpx.get(config["routerUrl"].replace("https://", "http://") + "/x")
        assert plain.status_code == 308
        assert plain.headers["location"] == f"{config['routerUrl']}/x"
    finally:
        server.stop()


def served_name(port: int, ca: Path) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            subject = dict(item[0] for item in conn.getpeercert()["subject"])
            return str(subject["commonName"])
