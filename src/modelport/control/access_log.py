"""The management API's access log, without query strings.

uvicorn logs each request's full path; a client that puts a credential in the
query (``?token=...``) would have it written to ``server.log``.  The path alone
says what was asked for, so the query never reaches the log.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class DropQuery(logging.Filter):
    """Cuts the query string off the path in uvicorn's access records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's record: (client address, method, full path, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].partition("?")[0], args[3], args[4])
        return True


def install() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropQuery) for f in logger.filters):
        logger.addFilter(DropQuery())
