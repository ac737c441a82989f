"""The router's scoring port with TLS: protocols, ALPN, the chain, plain HTTP, reloads,
and what a client that does not trust the certificate is told."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.control.router_process import RouterProcess
from modelport.control.tls import TlsSettings
from modelport.errors import TlsError
from modelport.sdk.client import ApiClient
from modelport.sdk.tls import client_context
from tests.certs import NOW, Pki
from tests.conftest import child_pids, wait_for
from tests.integration.test_router import TOKEN, FakeReplica

SCORE = "/api/v1/service/svc/score"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.make(tmp_path / "pki")


@asynccontextmanager
async def tls_router(
    home: Path, tls: TlsSettings, workers: int = 1
) -> AsyncIterator[tuple[RouterProcess, FakeReplica]]:
    fake = FakeReplica()
    await fake.start()
    proc = RouterProcess(home, "127.0.0.1", 0, TOKEN, workers=workers, tls=tls)
    await proc.start()
    entry = {
        "auth": False,
        "keyDigests": [],
        "replicas": [["127.0.0.1", fake.port]],
        "scoringTimeoutMs": 60000,
        "maxConcurrent": 4,
        "maxWaitMs": 500,
        "maxQueue": 100,
    }
    await proc.publish({"svc": entry})
    try:
        yield proc, fake
    finally:
        await fake.stop()
        await proc.stop()


def trusting(ca: Path, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    for name, version in versions.items():
        setattr(context, name, version)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def handshake(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def s_client(port: int, ca: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca)]
    command += ["-verify_return_error", *args]
    return subprocess.run(command, input="", capture_output=True, text=True, timeout=30)


def served_name(port: int, ca: Path) -> str:
    with handshake(port, trusting(ca)) as conn:
        subject = dict(item[0] for item in conn.getpeercert()["subject"])
        return str(subject["commonName"])


def score_on(conn: ssl.SSLSocket, ident: str) -> dict[str, Any]:
    """One keep-alive request on an open TLS connection; the JSON answer."""
    body = json.dumps({"id": ident}).encode()
    conn.sendall(
        f"POST {SCORE} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    answer: dict[str, Any] = json.loads(rest)
    return answer


def test_tls_versions_alpn_chain_and_curl(tmp_path: Path, pki: Pki) -> None:
    cert, key, _ = pki.leaf("router-one")

    async def go() -> None:
        async with tls_router(tmp_path, TlsSettings(cert, key)) as (proc, _fake):
            assert proc.url.startswith("https://")
            old = s_client(proc.port, pki.ca, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            assert old.returncode != 0
            # The client sent its TLS 1.1 hello; the server refused it (alert or close).
            assert "Cipher is (NONE)" in old.stdout  # no session
            assert any(w in old.stderr for w in ("alert protocol version", "unexpected eof"))
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                pinned = trusting(pki.ca, minimum_version=version, maximum_version=version)
                with handshake(proc.port, pinned) as conn:
                    assert (
                        conn.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
                    )
                    assert conn.selected_alpn_protocol() == "http/1.1"
                    assert (await asyncio.to_thread(score_on, conn, "a"))["id"] == "a"
            shown = s_client(proc.port, pki.ca, "-showcerts", "-alpn", "http/1.1").stdout
            assert shown.count("-----BEGIN CERTIFICATE-----") == 2  # leaf + intermediate
            assert "Verify return code: 0 (ok)" in shown and "ALPN protocol: http/1.1" in shown
            curl = await asyncio.to_thread(
                subprocess.run,
                ["curl", "-sS", "--cacert", str(pki.ca), "-d", '{"id": "c"}', f"{proc.url}{SCORE}"],
                capture_output=True,
                timeout=30,
            )
            assert curl.returncode == 0, curl.stderr
            assert json.loads(curl.stdout)["id"] == "c"

    asyncio.run(go())


def test_plain_http_is_refused_with_the_https_address_or_redirected(
    tmp_path: Path, pki: Pki
) -> None:
    cert, key, _ = pki.leaf("router-one")

    async def go() -> None:
        async with tls_router(tmp_path / "off", TlsSettings(cert, key)) as (proc, fake):
            plain = proc.url.replace("https://", "http://") + SCORE + "?x=1"
            answer = httpx.post(plain, json={"id": "p"})
            assert answer.status_code == 400
            assert answer.json()["error"]["code"] == "https_required"
            assert f"https://127.0.0.1:{proc.port}{SCORE}?x=1" in answer.json()["error"]["message"]
            assert fake.seen == []
        async with tls_router(tmp_path / "on", TlsSettings(cert, key, "redirect")) as (proc, fake):
            plain = proc.url.replace("https://", "http://") + SCORE
            answer = httpx.post(plain, json={"id": "p"}, headers={"host": "localhost:1"})
            assert answer.status_code == 308
            assert answer.headers["location"] == f"https://localhost:{proc.port}{SCORE}"
            followed = await asyncio.to_thread(
                httpx.post,
                plain,
                json={"id": "r"},
                follow_redirects=True,
                verify=client_context(pki.ca),
            )
            assert followed.status_code == 200 and followed.json()["id"] == "r"
            assert fake.seen == ["r"]

    asyncio.run(go())


def test_replaced_files_serve_new_connections_and_keep_open_ones(tmp_path: Path, pki: Pki) -> None:
    cert, key, _ = pki.leaf("router-one")
    served = tmp_path / "served.pem", tmp_path / "served-key.pem"

    def install(pair: tuple[Path, Path]) -> None:
        for source, target in ((pair[1], served[1]), (pair[0], served[0])):  # key first
            tmp = target.with_suffix(".new")
            tmp.write_bytes(source.read_bytes())
            os.replace(tmp, target)

    install((cert, key))

    async def go() -> None:
        async with tls_router(tmp_path, TlsSettings(*served), workers=2) as (proc, _fake):

            def everywhere(name: str) -> bool:  # the kernel spreads connections over workers
                return all(served_name(proc.port, pki.ca) == name for _ in range(8))

            assert everywhere("router-one")
            kept = handshake(proc.port, trusting(pki.ca))
            try:
                assert (await asyncio.to_thread(score_on, kept, "before"))["id"] == "before"
                workers = set(child_pids(proc.pid))
                second_cert, second_key, _ = pki.leaf("router-two")
                install((second_cert, second_key))
                wait_for(lambda: everywhere("router-two"), what="the new certificate")
                assert (await asyncio.to_thread(score_on, kept, "after"))[
                    "id"
                ] == "after"  # the open connection goes on
                # SIGHUP reloads at once; the workers live on.
                third_cert, third_key, _ = pki.leaf("router-three")
                install((third_cert, third_key))
                assert proc.pid is not None
                os.kill(proc.pid, signal.SIGHUP)
                wait_for(lambda: everywhere("router-three"), what="the reload")
                assert set(child_pids(proc.pid)) == workers
                assert (await asyncio.to_thread(score_on, kept, "still"))["id"] == "still"
                # A broken pair keeps the certificate in use.
                served[0].write_text("not a certificate")
                os.kill(proc.pid, signal.SIGHUP)
                assert everywhere("router-three")
            finally:
                kept.close()

    asyncio.run(go())


async def abandon(proc: RouterProcess) -> None:
    """As a control plane that died: its router serves on, nobody watches it."""
    assert proc._watch is not None
    proc._watch.cancel()
    await proc._client.aclose()


def test_changed_tls_settings_replace_a_running_router(tmp_path: Path, pki: Pki) -> None:
    cert, key, _ = pki.leaf("router-one")

    async def go() -> None:
        first = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN, tls=TlsSettings(cert, key))
        await first.start()
        await abandon(first)
        same = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN, tls=TlsSettings(cert, key))
        await same.start()
        assert same.pid == first.pid  # adopted
        await abandon(same)
        other = TlsSettings(cert, key, "redirect")
        changed = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN, tls=other)
        await changed.start()
        try:
            assert changed.pid != first.pid  # "other settings": replaced
            assert first._proc is not None
            await first._proc.wait()  # the replaced one ended (reaped: it was our child)
            await abandon(changed)
            plain = RouterProcess(tmp_path, "127.0.0.1", 0, TOKEN)
            await plain.start()
            assert plain.pid != changed.pid and plain.url.startswith("http://")
            await plain.stop()
        finally:
            await changed.stop()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("unknown", "unable to get local issuer certificate"),
        ("host", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
        ("expired", "certificate has expired"),
    ],
)
def test_a_wrong_certificate_is_a_clear_error(
    tmp_path: Path, pki: Pki, which: str, reason: str
) -> None:
    if which == "host":
        cert, key, _ = pki.leaf("elsewhere", hosts=("elsewhere.example",))
    elif which == "expired":
        cert, key, _ = pki.leaf("old", not_after=NOW - dt.timedelta(days=1))
    else:
        cert, key, _ = pki.leaf("router-one")
    trusted = Pki.make(tmp_path / "other", "other").ca if which == "unknown" else pki.ca

    async def go() -> None:
        async with tls_router(tmp_path, TlsSettings(cert, key)) as (proc, _fake):
            client = ApiClient(proc.url, TOKEN, verify=client_context(trusted))
            try:
                with pytest.raises(TlsError) as refused:
                    await asyncio.to_thread(client.call, "GET", SCORE)
            finally:
                client.close()
            assert f"127.0.0.1:{proc.port}" in refused.value.message
            assert reason in refused.value.message
            assert refused.value.exit_code == 11

    asyncio.run(go())


def test_silent_and_unfinished_plain_connections_are_closed(tmp_path: Path, pki: Pki) -> None:
    cert, key, _ = pki.leaf("router-one")

    def closed(sock: socket.socket) -> bool:
        sock.settimeout(60)  # the router's deadlines are 10 s; this only bounds the test
        return sock.recv(1024) == b""

    async def go() -> None:
        async with tls_router(tmp_path, TlsSettings(cert, key)) as (proc, _fake):
            silent = socket.create_connection(("127.0.0.1", proc.port))
            unfinished = socket.create_connection(("127.0.0.1", proc.port))
            unfinished.sendall(b"POST /api/v1/service/svc/score HTTP/1.1\r\nhost: x\r\n")
            try:
                for sock in (silent, unfinished):
                    assert await asyncio.to_thread(closed, sock)
                with handshake(proc.port, trusting(pki.ca)) as conn:  # others still served
                    assert (await asyncio.to_thread(score_on, conn, "z"))["id"] == "z"
            finally:
                silent.close()
                unfinished.close()

    asyncio.run(go())
