"""One place for "now", always timezone-aware UTC, so tests can pass their own instant."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """The current instant in UTC (aware)."""
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """Treat a naive timestamp (as SQLite returns them) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
