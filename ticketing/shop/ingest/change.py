"""What ingesting one row did, and the two rules every entity shares: an older version of a
record never overwrites a newer one, and writing the same values again is no change."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ticketing.core.clock import aware
from ticketing.core.pii import PiiCipher


class Status(str, enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the same values again (a replay): nothing written, nothing told
    STALE = "stale"  # older than what Kefu holds: nothing written
    ERROR = "error"  # refused: nothing written, the error says why


@dataclass(frozen=True)
class Context:
    """What every upsert of one batch needs: the PII cipher, the batch's moment, and whether
    customers may be told about changes (a dry run or a history import says no)."""

    cipher: PiiCipher
    now: datetime
    notify: bool = True
    # an event older than this when it arrives is history: stored, but nobody is told
    fresh_for: timedelta = timedelta(days=3)

    def is_fresh(self, at: datetime | None) -> bool:
        return self.notify and at is not None and self.now - aware(at) <= self.fresh_for


def utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def is_stale(stored: datetime | None, incoming: datetime) -> bool:
    """True when the shop sends an older version than the one stored (equal is not older)."""
    return stored is not None and utc(incoming) < aware(stored)


def newest(stored: datetime | None, incoming: datetime) -> datetime:
    return utc(incoming) if stored is None else max(aware(stored), utc(incoming))


def assign(target: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; True when any did (so a replay writes nothing)."""
    changed = False
    for name, value in values.items():
        current = getattr(target, name)
        if isinstance(current, datetime) and isinstance(value, datetime):
            same = aware(current) == utc(value)
        else:
            same = current == value
        if not same:
            setattr(target, name, value)
            changed = True
    return changed
