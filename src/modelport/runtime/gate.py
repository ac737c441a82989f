"""Only the router reaches a local replica: the replica key each request must carry.

The local target hands the runtime a key in ``MODELPORT_REPLICA_KEY``; the runtime
takes it out of its environment before it imports the entry script, and answers 403
to any request without it, except ``GET /`` (liveness, which tells nothing).  The
key's header is removed before the entry script sees the request.  A runtime started
without a key (by hand, or in a pod that a NetworkPolicy fences) serves openly.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import MutableMapping

from modelport.httpserver import Request

KEY_VARIABLE = "MODELPORT_REPLICA_KEY"
HEADER = b"x-modelport-replica-key"  # the router's modelport.router.table.REPLICA_KEY_HEADER
REFUSED = "this replica answers its service's router only: send requests to the scoring URI"


def take_key(environ: MutableMapping[str, str] = os.environ) -> bytes | None:
    """The replica key, removed from the environment the entry script will see."""
    key = environ.pop(KEY_VARIABLE, None)
    return key.encode() if key else None


def is_liveness(request: Request) -> bool:
    return request.method == "GET" and request.path in ("/", "")


def admits(request: Request, key: bytes) -> bool:
    """Whether ``request`` carries ``key`` (the first copy counts: the router sends its
    own first); every copy of the header is taken out of the request."""
    found: bytes | None = None
    kept = []
    for name, value in request.headers:
        if name == HEADER:
            found = value if found is None else found
        else:
            kept.append((name, value))
    request.headers = kept
    return found is not None and hmac.compare_digest(found, key)
