"""Scoring tokens' lifetime setting (``modelport up --token-lifetime``).

The default is shorter than v1's (whose tokens stayed valid 12 hours past their
refresh time): a token lives an hour and should be replaced after half of it, so a
leaked token is useful for an hour at most and a client refreshing on time never
holds an expired one.
"""

from __future__ import annotations

import os

from modelport.errors import ConfigError

LIFETIME_VARIABLE = "MODELPORT_TOKEN_LIFETIME"  # seconds; `modelport up --token-lifetime`
DEFAULT_LIFETIME_S = 3600
MIN_LIFETIME_S, MAX_LIFETIME_S = 10, 7 * 24 * 3600


def lifetime_s(environ: dict[str, str] | None = None) -> int:
    """The token lifetime in force (``--token-lifetime``), checked."""
    raw = (os.environ if environ is None else environ).get(LIFETIME_VARIABLE)
    if raw in (None, ""):
        return DEFAULT_LIFETIME_S
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not MIN_LIFETIME_S <= value <= MAX_LIFETIME_S:
        raise ConfigError(
            f"{LIFETIME_VARIABLE}={raw!r}: a token lifetime is whole seconds from "
            f"{MIN_LIFETIME_S} to {MAX_LIFETIME_S}"
        )
    return value
