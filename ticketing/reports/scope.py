"""What a report asks about: a window of the shop's local days and the filters on it.

Windows are half-open ``[since, until)`` in UTC, made of whole local days in the shop's time
zone; the comparison is always the same number of days just before. Filters narrow every
figure at once: several values of one filter are alternatives, different filters must all hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.errors import ValidationError
from ticketing.core.models import ConversationFact, TicketFact

DIMENSIONS = ("agent", "team", "category", "channel", "tier", "segment", "priority")


@dataclass(frozen=True)
class Period:
    """``[since, until)``, aware; ``first``/``last`` are the local days it was made of."""

    since: datetime
    until: datetime
    first: date
    last: date
    zone: tzinfo

    @classmethod
    def of_days(cls, first: date, last: date, zone: str | tzinfo) -> Period:
        """The local days ``first``..``last`` inclusive, in the shop's zone."""
        tz = _zone(zone)
        if last < first:
            raise ValidationError("the range ends before it starts", field="until")
        if (last - first).days > 731:
            raise ValidationError("ranges are limited to two years", field="since")
        since = datetime.combine(first, time(), tz)
        until = datetime.combine(last + timedelta(days=1), time(), tz)
        return cls(since, until, first, last, tz)

    @classmethod
    def last_days(cls, days: int, *, today: date, zone: str | tzinfo) -> Period:
        """The ``days`` local days ending with ``today`` (the dashboard's default: 7)."""
        return cls.of_days(today - timedelta(days=days - 1), today, zone)

    def previous(self) -> Period:
        """The same number of days just before: the comparison on every page."""
        length = (self.last - self.first).days + 1
        return Period.of_days(self.first - timedelta(days=length),
                              self.first - timedelta(days=1), self.zone)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass(frozen=True)
class Filters:
    """Which tickets count. Agent and team mean the owner's for ticket metrics and the agent
    the survey was credited to for satisfaction; conversations obey the channel filter only."""

    agents: tuple[int, ...] = ()
    teams: tuple[int, ...] = ()
    tiers: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()

    def narrowed(self, dimension: str, key: str | None) -> Filters:
        """These filters and one more value: what a table row or chart bar drills into."""
        name, value = narrowing(dimension, key)
        return replace(self, **{name: (value,)})

    def active(self) -> bool:
        return any(getattr(self, name) for name in _FILTER_OF.values())

    def tickets(self) -> list[ColumnElement[bool]]:
        return self._where(TicketFact.owner_id, TicketFact.team_id)

    def surveys(self) -> list[ColumnElement[bool]]:
        return self._where(TicketFact.survey_agent_id, TicketFact.survey_team_id)

    def by_owner_only(self) -> bool:
        """Only agent and team filters (or none): what the day cells can answer."""
        return not (self.tiers or self.categories or self.channels or self.segments
                    or self.priorities)

    def conversations(self) -> list[ColumnElement[bool]]:
        return [ConversationFact.channel.in_(self.channels)] if self.channels else []

    def _where(self, agent: Any, team: Any) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        for values, column in ((self.agents, agent), (self.teams, team),
                               (self.tiers, TicketFact.tier),
                               (self.categories, TicketFact.category),
                               (self.channels, TicketFact.channel),
                               (self.segments, TicketFact.segment),
                               (self.priorities, TicketFact.priority)):
            if values:
                known = [v for v in values if v is not None]
                clause = column.in_(known) if known else None
                if None in values:  # "unassigned" rows drill into tickets without an owner/team
                    clause = column.is_(None) if clause is None else or_(clause, column.is_(None))
                where.append(clause)  # type: ignore[arg-type]
        return where


_FILTER_OF = {"agent": "agents", "team": "teams", "tier": "tiers", "category": "categories",
              "channel": "channels", "segment": "segments", "priority": "priorities"}
_INT_FILTERS = ("agents", "teams", "tiers")


def iso_week(day: str | date) -> str:
    value = date.fromisoformat(day) if isinstance(day, str) else day
    year, week, _ = value.isocalendar()
    return f"{year}-W{week:02d}"


def narrowing(dimension: str, key: Any) -> tuple[str, Any]:
    """The filter a table row or chart bar of ``dimension`` sets, and its value."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    name = _FILTER_OF[dimension]
    return name, None if key is None else (int(key) if name in _INT_FILTERS else key)


def _zone(zone: str | tzinfo) -> tzinfo:
    if isinstance(zone, tzinfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"unknown time zone {zone!r}", field="timezone") from exc
