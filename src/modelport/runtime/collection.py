"""Where a replica's collected model data goes (``ModelDataCollector``, v1's layout).

The compute target names the service's folder (``MODELPORT_MODELDATA_DIR``); one
``rowsink.Sink`` per replica writes there off the request path, and what it holds is
written when the replica exits.
"""

from __future__ import annotations

import atexit
import os
import threading

from modelport.rowsink import Rows, Sink, append_rows, partition

__all__ = ["BOUNDARY_ENV", "CAPACITY", "DIR_ENV", "Rows", "Sink", "append_rows", "partition"]

DIR_ENV = "MODELPORT_MODELDATA_DIR"
BOUNDARY_ENV = "AML_MODEL_DC_BOUNDARY"
CAPACITY_ENV = "MODELPORT_MODELDATA_BUFFER_ROWS"
CAPACITY = 10_000  # rows held before new ones are dropped


_shared: Sink | None = None
_shared_lock = threading.Lock()


def current_sink() -> Sink | None:
    """The sink if anything collected yet (for counting: never makes one)."""
    return _shared


def shared_sink() -> Sink:
    """The replica's one sink, written out when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            capacity = int(os.environ.get(CAPACITY_ENV) or CAPACITY)
            _shared = Sink(capacity)
            atexit.register(_shared.close)
        return _shared
