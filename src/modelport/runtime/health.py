"""Liveness on its own socket, answered by a thread.

An inline ``run()`` holds the event loop for as long as it takes; probes on this
socket are still answered, so a busy replica is not mistaken for a dead one.
``GET /stats`` answers the replica's counters (``counters.py``) as JSON.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n"
    b"connection: close\r\n\r\nHealthy"
)

STATS = b"GET /stats "


def serve_health(
    sock: socket.socket, stats: Callable[[], bytes] = lambda: b"{}"
) -> threading.Thread:
    thread = threading.Thread(target=_serve, args=(sock, stats), name="health", daemon=True)
    thread.start()
    return thread


def _serve(sock: socket.socket, stats: Callable[[], bytes]) -> None:
    sock.setblocking(True)
    while True:
        conn, _ = sock.accept()
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2.0)
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            conn.sendall(_stats_answer(stats()) if request.startswith(STATS) else ANSWER)


def _stats_answer(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\nconnection: close\r\n\r\n" + body
