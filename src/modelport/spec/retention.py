"""How long collected model data is kept: ``modelport up --model-data-retention-days``."""

from __future__ import annotations

import os

from modelport.errors import ConfigError

RETENTION_VARIABLE = "MODELPORT_MODEL_DATA_RETENTION_DAYS"


def retention_days(environ: dict[str, str] | None = None) -> int | None:
    """``--model-data-retention-days``: None keeps model data for ever."""
    raw = (os.environ if environ is None else environ).get(RETENTION_VARIABLE)
    if raw in (None, ""):
        return None
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"{RETENTION_VARIABLE}={raw!r}: model data is kept whole days, 1 or more")
    return days
