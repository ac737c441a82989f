"""What a scoring script prints carries the id of the request it ran in.

As App Insights tied v1's ``print()`` lines to their request, a line written to
``sys.stdout`` or ``sys.stderr`` while a request is being scored starts with
``[<request id>] ``.  Outside a request nothing changes, and the runtime's own log
lines do not pass through here: logging's handler keeps the stream it was given
before ``install`` ran.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from modelport.runtime.request_context import NO_REQUEST, REQUEST_ID


class RequestTagged:
    """A text stream that prefixes each line begun inside a request with its id.

    A line is tagged by the request active when it starts, so ``print("a", end="")``
    then ``print("b")`` make one tagged line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._line_start = True

    def write(self, text: str) -> int:
        request = REQUEST_ID.get()
        if request == NO_REQUEST or not text:
            if text:
                self._line_start = text.endswith("\n")
            return self._stream.write(text)
        prefix = f"[{request}] "
        body = text[:-1] if text.endswith("\n") else text
        tagged = body.replace("\n", "\n" + prefix)
        if self._line_start:
            tagged = prefix + tagged
        if len(body) != len(text):
            tagged += "\n"
        self._line_start = text.endswith("\n")
        self._stream.write(tagged)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        # flush, fileno, encoding, isatty...: the wrapped stream's own
        return getattr(self._stream, name)


def install() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr``; call after logging is set up."""
    if not isinstance(sys.stdout, RequestTagged):
        sys.stdout = RequestTagged(sys.stdout)
    if not isinstance(sys.stderr, RequestTagged):
        sys.stderr = RequestTagged(sys.stderr)
