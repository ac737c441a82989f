"""Where a replica's collected model data goes (``ModelDataCollector``, v1's layout).

The local target names the service's folder (``MODELPORT_MODELDATA_DIR``); a
Kubernetes target names the control plane's ingest address instead
(``rowupload.py``), and the partitions are then relative to the service's
folder there.  One ``rowsink.Sink`` per replica writes off the request path, and
what it holds is written when the replica exits.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import MutableMapping
from pathlib import Path

from modelport.rowsink import Rows, Sink, append_rows, partition
from modelport.rowupload import REPLICA, Destination, Uploader

__all__ = ["BOUNDARY_ENV", "CAPACITY", "DIR_ENV", "Rows", "Sink", "append_rows", "partition"]

DIR_ENV = "MODELPORT_MODELDATA_DIR"
BOUNDARY_ENV = "AML_MODEL_DC_BOUNDARY"
CAPACITY_ENV = "MODELPORT_MODELDATA_BUFFER_ROWS"
CAPACITY = 10_000  # rows held before new ones are dropped


_shared: Sink | None = None
_shared_lock = threading.Lock()
_destination: Destination | None = None


def take_destination(environ: MutableMapping[str, str] = os.environ) -> None:
    """Called before the entry script is imported: the model-data credential leaves
    the environment it sees."""
    global _destination
    _destination = Destination.take(environ, REPLICA)


def root() -> Path | None:
    """The folder partitions are made under; None where the target keeps no model data."""
    folder = os.environ.get(DIR_ENV)
    if folder:
        return Path(folder)
    return Path() if _destination is not None else None


def current_sink() -> Sink | None:
    """The sink if anything collected yet (for counting: never makes one)."""
    return _shared


def shared_sink() -> Sink:
    """The replica's one sink, written out when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            capacity = int(os.environ.get(CAPACITY_ENV) or CAPACITY)
            remote = _destination is not None and not os.environ.get(DIR_ENV)
            write = Uploader(_destination).write if _destination and remote else append_rows
            _shared = Sink(capacity, write=write)
            atexit.register(_shared.close)
        return _shared
