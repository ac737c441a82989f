"""Timestamps as the API server wants them."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def api_time(when: datetime | None = None) -> str:
    """A ``Time``: RFC 3339 to the second."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime | None = None) -> str:
    """A ``MicroTime``, always with its six digits (the server rejects ``...:05Z``)."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
