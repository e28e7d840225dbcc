"""Business-hours calendars: SLA clocks count only the hours the desk is staffed.

A calendar is written like ``"mon-sat 09:00-21:00"`` (several rules joined by ``;``, e.g.
``"mon-fri 09:00-18:00; sat,sun 10:00-16:00"``) and read in the shop's timezone through
``zoneinfo``, so "09:00" means nine in Shanghai whatever the server's clock says. ``None``
means round the clock: a 24-hour deadline is then simply 24 hours later.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketing.core.errors import ConfigurationError
from ticketing.core.settings import DEFAULT_TIMEZONE

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^\s*([a-z,\-\s]+?)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class Calendar(Protocol):
    """What SLA timers need from a calendar."""

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime: ...

    def business_seconds_between(self, a: datetime, b: datetime) -> float: ...


class RoundTheClock:
    """Every second counts: the calendar when no business hours are configured."""

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(seconds=max(0.0, seconds))

    def business_seconds_between(self, a: datetime, b: datetime) -> float:
        return max(0.0, (b - a).total_seconds())

    def __repr__(self) -> str:
        return "RoundTheClock()"


class BusinessCalendar:
    """Opening windows per weekday in one timezone (no overnight windows: split them)."""

    def __init__(self, windows: dict[int, list[tuple[int, int]]], tz: ZoneInfo) -> None:
        # windows: weekday (0 = Monday) -> sorted [(start_minute, end_minute)], end <= 1440
        self.windows = {day: sorted(spans) for day, spans in windows.items() if spans}
        if not self.windows:
            raise ConfigurationError("business hours open on no day at all")
        self.tz = tz

    def _open_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's windows as aware UTC instants (wall-clock arithmetic, so DST is right)."""
        midnight = datetime.combine(day, time.min, tzinfo=self.tz)
        spans = []
        for start_min, end_min in self.windows.get(day.weekday(), []):
            start = (midnight + timedelta(minutes=start_min)).astimezone(timezone.utc)
            if end_min >= 24 * 60:
                end_local = datetime.combine(day + timedelta(days=1), time.min, tzinfo=self.tz)
            else:
                end_local = midnight + timedelta(minutes=end_min)
            spans.append((start, end_local.astimezone(timezone.utc)))
        return spans

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of opening time have passed after ``start``.

        Zero seconds from a closed moment gives the next opening: that is when an agent can act.
        """
        remaining = max(0.0, seconds)
        day = start.astimezone(self.tz).date() - timedelta(days=1)  # a window may span midnight UTC
        for _ in range(int(remaining // 3600) + 800):  # at least one open hour a week: bounded
            for open_at, close_at in self._open_spans(day):
                if close_at <= start:
                    continue
                begin = max(open_at, start)
                available = (close_at - begin).total_seconds()
                if remaining <= available:
                    return begin + timedelta(seconds=remaining)
                remaining -= available
            day += timedelta(days=1)
        raise ConfigurationError("business hours too sparse to place a deadline")

    def business_seconds_between(self, a: datetime, b: datetime) -> float:
        """Opening seconds in [a, b); 0 when b is not after a."""
        if b <= a:
            return 0.0
        total = 0.0
        day = a.astimezone(self.tz).date() - timedelta(days=1)
        last = b.astimezone(self.tz).date()
        while day <= last:
            for open_at, close_at in self._open_spans(day):
                lo, hi = max(open_at, a), min(close_at, b)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.windows!r}, {self.tz.key!r})"


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for part in text.replace(" ", "").split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ConfigurationError(f"unknown day range {part!r} in business hours")
            i, j = DAY_NAMES.index(first), DAY_NAMES.index(last)
            days.extend(k % 7 for k in range(i, (j if j >= i else j + 7) + 1))  # sat-mon wraps
        elif part in DAY_NAMES:
            days.append(DAY_NAMES.index(part))
        else:
            raise ConfigurationError(f"unknown day {part!r} in business hours")
    return days


def parse(spec: str, timezone_name: str) -> BusinessCalendar:
    """Parse ``"mon-sat 09:00-21:00; sun 10:00-16:00"``; raise ConfigurationError if malformed."""
    try:
        tz = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {timezone_name!r}") from exc
    windows: dict[int, list[tuple[int, int]]] = {}
    for rule in filter(None, (r.strip() for r in spec.lower().split(";"))):
        match = _RULE.match(rule)
        if not match:
            raise ConfigurationError(f"business hours rule {rule!r} is not like 'mon-fri 09:00-18:00'")
        days_text, h1, m1, h2, m2 = match.groups()
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or start >= 24 * 60 or end > 24 * 60 or end <= start:
            raise ConfigurationError(f"business hours rule {rule!r} has an impossible time span")
        for day in _parse_days(days_text):
            windows.setdefault(day, []).append((start, end))
    for day, spans in windows.items():
        spans.sort()
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            raise ConfigurationError(f"business hours overlap on {DAY_NAMES[day]}")
    return BusinessCalendar(windows, tz)


@lru_cache(maxsize=32)
def calendar_for(spec: str | None, timezone_name: str = DEFAULT_TIMEZONE) -> Calendar:
    """The calendar for a settings value (cached: parsing is done once per process)."""
    if spec is None or not spec.strip():
        return RoundTheClock()
    return parse(spec, timezone_name)
