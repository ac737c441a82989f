"""``python -m modelport.compute.kubernetes.launch``: the router container's entry point.

On one machine the control plane binds the router's sockets and hands them over;
in a pod this binds them on the pod's address (``MODELPORT_ROUTER_HOST``, ports
``MODELPORT_ROUTER_PORT`` and ``MODELPORT_ROUTER_ADMIN_PORT``) and replaces itself
with a router worker (``python -m modelport.router``), which finds them as
``MODELPORT_ROUTER_FD`` and ``MODELPORT_ROUTER_ADMIN_FD``.  The kubelet restarts
the container if the router exits.
"""

from __future__ import annotations

import os
import socket
import sys

BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=False)
    sock.set_inheritable(True)
    return sock


def main() -> int:
    try:
        host = os.environ["MODELPORT_ROUTER_HOST"]
        scoring = bind(host, int(os.environ["MODELPORT_ROUTER_PORT"]))
        admin = bind(host, int(os.environ["MODELPORT_ROUTER_ADMIN_PORT"]))
    except KeyError as exc:
        print(f"router launch: {exc.args[0]} is not set", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"router launch: cannot listen: {exc}", file=sys.stderr)
        return 2
    os.environ["MODELPORT_ROUTER_FD"] = str(scoring.fileno())
    os.environ["MODELPORT_ROUTER_ADMIN_FD"] = str(admin.fileno())
    os.execv(sys.executable, [sys.executable, "-m", "modelport.router"])


if __name__ == "__main__":
    sys.exit(main())
