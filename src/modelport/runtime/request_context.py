"""What the request being scored is, for code that runs inside ``run()``.

The data plane sets the request id before it calls ``run()`` (on the event loop's
thread, or in the worker thread's copy of the context), so v1's data collector can
stamp ``$aml_request_id`` as v1 took Flask's ``REQUEST_ID``.
"""

from __future__ import annotations

from contextvars import ContextVar

NO_REQUEST = "00000000-0000-0000-0000-000000000000"  # v1's id outside a request
REQUEST_ID: ContextVar[str] = ContextVar("modelport_request_id", default=NO_REQUEST)
