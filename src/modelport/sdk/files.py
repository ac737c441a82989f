"""Reading the user's files, with errors that name them."""

from __future__ import annotations

import os
from pathlib import Path

from modelport.errors import InvalidInputError


def read_text(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {str(path)!r}: {exc}") from exc
