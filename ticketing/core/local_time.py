"""Moments as people read them: in the shop's time zone, in their language.

One home for every date and time a customer (or an agent) reads, so a receipt, a parcel scan
and a reply-by promise never disagree about the zone or the format. Two shapes:

- :func:`date_time` — ``2026-11-30 18:00``: order dates and deadlines, unambiguous in zh and en;
- :func:`short_moment` — ``11月30日 18:00`` / ``30 Nov 18:00``: scans, ETAs, reply-by times;
- :func:`short_date` — ``11月30日`` / ``30 Nov``: order buttons, the day money arrives.

The zone is the deployment's ``KEFU_TIMEZONE`` (``Settings.timezone``), passed in by callers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketing.core.clock import aware
from ticketing.core.errors import ConfigurationError
from ticketing.core.i18n import normalize_language


def zone(timezone: str) -> ZoneInfo:
    """The IANA zone ``timezone``; an unknown name is a configuration mistake."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown time zone {timezone!r}") from exc


def local(moment: datetime, timezone: str) -> datetime:
    """``moment`` (naive values are UTC, as the database stores them) in the shop's zone."""
    return aware(moment).astimezone(zone(timezone))


def date_time(moment: datetime, *, timezone: str) -> str:
    """``2026-11-30 18:00`` in the shop's zone."""
    return f"{local(moment, timezone):%Y-%m-%d %H:%M}"


def short_moment(moment: datetime, *, language: str | None, timezone: str) -> str:
    """``11月30日 18:00`` (zh) or ``30 Nov 18:00`` (en): a day this season, no year."""
    at = local(moment, timezone)
    if normalize_language(language) == "zh":
        return f"{at.month}月{at.day}日 {at:%H:%M}"
    return f"{at.day} {at:%b %H:%M}"


def short_date(moment: datetime, *, language: str | None, timezone: str) -> str:
    """``11月30日`` (zh) or ``30 Nov`` (en): the day only."""
    at = local(moment, timezone)
    if normalize_language(language) == "zh":
        return f"{at.month}月{at.day}日"
    return f"{at.day} {at:%b}"


def duration_words(span: timedelta, *, language: str | None) -> str:
    """A promised wait as people say it: ``1 hour``, ``2 hours``, ``1.5 hours``, ``45 minutes``
    (en); ``1小时``, ``1.5小时``, ``45分钟`` (zh)."""
    minutes = max(1, round(span.total_seconds() / 60))
    zh = normalize_language(language) == "zh"
    if minutes < 60:
        return f"{minutes}分钟" if zh else f"{minutes} minute{'' if minutes == 1 else 's'}"
    hours = round(minutes / 60, 1)
    number = f"{hours:g}"
    return f"{number}小时" if zh else f"{number} hour{'' if hours == 1 else 's'}"
