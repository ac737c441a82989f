"""Listening sockets the control plane binds and hands to its child processes."""

from __future__ import annotations

import socket

from modelport.errors import ConflictError


def bind_socket(
    host: str, port: int, flag: str = "--port", reuse_port: bool = False
) -> socket.socket:
    """A listening socket, or a clear error naming the flag that picks another port.

    ``reuse_port`` lets several sockets, one per router worker, share the port.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConflictError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint=f"pick another port with {flag} (0 picks a free one)",
        ) from exc
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock
