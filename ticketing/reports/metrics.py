"""Every service metric, defined once (docs/metrics.md), computed from the desk's facts.

Windows are half-open ``[since, until)`` in UTC, built from the shop's local days
(:meth:`Period.of_days`). Ticket metrics count tickets by when they reached the desk
(``created_at``: the handoff for a ticket the bot opened, so time with the bot is never
counted); satisfaction counts surveys by when they were sent; conversation metrics count
conversations by when they started. Filters narrow all of them at once (several values of one
filter are alternatives; different filters must all hold). A rate with nothing to divide is
None, and every figure carries its sample size ``n``.

Medians and 90th percentiles interpolate linearly between ranks (PostgreSQL's
``percentile_cont``, which computes them there; SQLite gets the same formula in Python).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import ConversationFact, ReplyWait, TicketFact
# reading facts means they must be kept: loading this module turns the listeners on too
from ticketing.desk import facts as _facts  # noqa: F401

# --- what is measured ---------------------------------------------------------------------
SLA_TARGETS = ("first_response", "next_response", "resolution")
DURATIONS = {  # name -> fact column (seconds)
    "first_response": TicketFact.first_response_s,
    "first_response_bh": TicketFact.first_response_bh_s,
    "resolution_first": TicketFact.resolution_first_s,
    "resolution_first_bh": TicketFact.resolution_first_bh_s,
    "resolution_last": TicketFact.resolution_last_s,
    "resolution_last_bh": TicketFact.resolution_last_bh_s,
}
NEXT_RESPONSE = ("next_response", "next_response_bh")
DIMENSIONS = ("agent", "team", "category", "channel", "tier", "segment", "priority")
OPEN_STATES = ("new", "open", "waiting_customer")
SATISFIED = (4, 5)


@dataclass(frozen=True)
class Metric:
    """A metric's definition, as docs/metrics.md states it and the dashboard labels it."""

    key: str
    label: Text
    numerator: str
    denominator: str
    counts_by: str
    unit: str  # "%", "s", "score", "count"


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("csat", Text("满意度", "CSAT"), "surveys answered 4 or 5", "surveys answered",
           "survey sent", "%"),
    Metric("csat_average", Text("平均评分", "Average score"), "sum of scores",
           "surveys answered", "survey sent", "score"),
    Metric("response_rate", Text("评价回复率", "Survey response rate"), "surveys answered",
           "surveys sent", "survey sent", "%"),
    Metric("first_response", Text("首次响应时间", "First response time"),
           "ticket reached the desk → first public agent reply", "tickets answered",
           "ticket created", "s"),
    Metric("next_response", Text("后续响应时间", "Next response time"),
           "customer wrote after an agent's reply → next public agent reply",
           "waits answered", "ticket created", "s"),
    Metric("resolution_first", Text("首次解决时长", "Time to first solve"),
           "ticket created → first solved", "tickets ever solved", "ticket created", "s"),
    Metric("resolution_last", Text("最终解决时长", "Time to last solve"),
           "ticket created → last solved", "tickets solved or closed now", "ticket created", "s"),
    Metric("sla_first_response", Text("首次响应达标率", "First response SLA"),
           "tickets whose first-response clock met its deadline",
           "tickets met + breached (running clocks past their deadline count as breached)",
           "ticket created", "%"),
    Metric("sla_next_response", Text("后续响应达标率", "Next response SLA"),
           "tickets whose every next-response clock met its deadline", "tickets met + breached",
           "ticket created", "%"),
    Metric("sla_resolution", Text("解决时限达标率", "Resolution SLA"),
           "tickets solved within the resolution deadline", "tickets met + breached",
           "ticket created", "%"),
    Metric("breached_now", Text("当前超时工单", "Breached now"),
           "unsolved tickets with a breached clock", "—", "now (any creation date)", "count"),
    Metric("containment", Text("机器人独立解决率", "Bot containment"),
           "conversations that opened no ticket", "conversations", "conversation started", "%"),
    Metric("handoff", Text("转人工率", "Handoff rate"),
           "conversations the bot handed to people", "conversations", "conversation started",
           "%"),
    Metric("reopen", Text("重开率", "Reopen rate"), "solved tickets reopened (within the window)",
           "tickets ever solved", "ticket created", "%"),
    Metric("escalation", Text("升级率", "Escalation rate"), "tickets escalated at least once",
           "tickets", "ticket created", "%"),
    Metric("tickets", Text("工单数", "Tickets"), "tickets that reached the desk", "—",
           "ticket created", "count"),
)}


# --- windows and filters -------------------------------------------------------------------
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
        if dimension not in DIMENSIONS:
            raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
        name = _FILTER_OF[dimension]
        value: Any = None if key is None else (int(key) if name in _INT_FILTERS else key)
        return replace(self, **{name: (value,)})

    def active(self) -> bool:
        return any(getattr(self, name) for name in _FILTER_OF.values())

    def tickets(self) -> list[ColumnElement[bool]]:
        return self._where(TicketFact.owner_id, TicketFact.team_id)

    def surveys(self) -> list[ColumnElement[bool]]:
        return self._where(TicketFact.survey_agent_id, TicketFact.survey_team_id)

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


# --- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Distribution:
    n: int
    median: float | None
    p90: float | None


@dataclass
class TicketStats:
    """Ticket counts and durations of one group (a period, an agent, a day...)."""

    tickets: int = 0
    escalated: int = 0
    solved: int = 0
    reopened: int = 0
    handed_off: int = 0
    unanswered: int = 0
    sla: dict[str, list[int]] = field(
        default_factory=lambda: {t: [0, 0] for t in SLA_TARGETS})  # target -> [met, breached]
    durations: dict[str, Distribution] = field(default_factory=dict)

    def sla_pct(self, target: str) -> float | None:
        met, breached = self.sla[target]
        return _pct(met, met + breached)

    def sla_n(self, target: str) -> int:
        return sum(self.sla[target])

    @property
    def reopen_pct(self) -> float | None:
        return _pct(self.reopened, self.solved)

    @property
    def escalation_pct(self) -> float | None:
        return _pct(self.escalated, self.tickets)

    def duration(self, name: str) -> Distribution:
        return self.durations.get(name, Distribution(0, None, None))


@dataclass
class CsatStats:
    sent: int = 0
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))

    @property
    def responses(self) -> int:
        return sum(self.distribution.values())

    @property
    def csat_pct(self) -> float | None:
        return _pct(sum(self.distribution[s] for s in SATISFIED), self.responses)

    @property
    def average(self) -> float | None:
        n = self.responses
        return None if n == 0 else sum(s * c for s, c in self.distribution.items()) / n

    @property
    def response_rate_pct(self) -> float | None:
        return _pct(self.responses, self.sent)

    def add(self, score: int | None, count: int) -> None:
        self.sent += count
        if score is not None and 1 <= score <= 5:
            self.distribution[int(score)] += count


@dataclass
class ConversationStats:
    conversations: int = 0
    contained: int = 0
    handed_off: int = 0

    @property
    def containment_pct(self) -> float | None:
        return _pct(self.contained, self.conversations)

    @property
    def handoff_pct(self) -> float | None:
        return _pct(self.handed_off, self.conversations)


@dataclass
class Summary:
    """The dashboard's headline figures for a period and the one before it."""

    period: Period
    previous: Period
    tickets: TicketStats
    tickets_before: TicketStats
    csat: CsatStats
    csat_before: CsatStats
    conversations: ConversationStats
    conversations_before: ConversationStats
    breached_now: int


# --- the queries ------------------------------------------------------------------------------
def summary(session: Session, period: Period, filters: Filters, *, now: datetime) -> Summary:
    """Everything on the dashboard's first row, for ``period`` and the span before it."""
    before = period.previous()
    flag = case((TicketFact.created_at >= period.since, "now"), else_="before")
    window = (TicketFact.created_at >= before.since, TicketFact.created_at < period.until)
    stats = ticket_stats(session, flag, window, filters, now=now)
    survey_flag = case((TicketFact.survey_sent_at >= period.since, "now"), else_="before")
    csat = csat_stats(session, survey_flag,
                      (TicketFact.survey_sent_at >= before.since,
                       TicketFact.survey_sent_at < period.until), filters)
    chat_flag = case((ConversationFact.started_at >= period.since, "now"), else_="before")
    chats = conversation_stats(session, chat_flag,
                               (ConversationFact.started_at >= before.since,
                                ConversationFact.started_at < period.until), filters)
    return Summary(
        period=period, previous=before,
        tickets=stats.get("now", TicketStats()), tickets_before=stats.get("before", TicketStats()),
        csat=csat.get("now", CsatStats()), csat_before=csat.get("before", CsatStats()),
        conversations=chats.get("now", ConversationStats()),
        conversations_before=chats.get("before", ConversationStats()),
        breached_now=breached_now(session, filters, now=now),
    )


def counts(session: Session, period: Period, filters: Filters, dimension: str, *,
           now: datetime) -> dict[Any, TicketStats]:
    """Ticket counts and SLA outcomes per dimension, without durations (contact reasons)."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    return ticket_stats(session, _DIMENSION_COLUMNS[dimension][0], window, filters, now=now,
                        durations=False)


def table(session: Session, period: Period, filters: Filters, dimension: str, *,
          now: datetime) -> tuple[dict[Any, TicketStats], dict[Any, CsatStats]]:
    """Ticket and satisfaction figures per agent, team, category, channel, tier, segment or
    priority (satisfaction per the agent and team the survey was credited to)."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    ticket_key, survey_key = _DIMENSION_COLUMNS[dimension]
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    stats = ticket_stats(session, ticket_key, window, filters, now=now)
    csat = csat_stats(session, survey_key,
                      (TicketFact.survey_sent_at >= period.since,
                       TicketFact.survey_sent_at < period.until), filters)
    return stats, csat


def trend(session: Session, period: Period, filters: Filters, grain: str, *,
          now: datetime) -> tuple[dict[str, TicketStats], dict[str, CsatStats]]:
    """Figures per local day (``2026-11-03``) or ISO week (``2026-W45``) of the period."""
    if grain not in ("day", "week"):
        raise ValidationError("grain is day or week", field="grain")
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    survey_window = (TicketFact.survey_sent_at >= period.since,
                     TicketFact.survey_sent_at < period.until)
    rekey = None if grain == "day" else _iso_week
    stats = ticket_stats(session, TicketFact.created_day, window, filters, now=now, rekey=rekey)
    csat = csat_stats(session, TicketFact.survey_day, survey_window, filters, rekey=rekey)
    return stats, csat


def buckets(period: Period, grain: str) -> list[str]:
    """The trend's x axis: every day or week of the period, with or without data."""
    days = [d.isoformat() for d in period.days()]
    return days if grain == "day" else list(dict.fromkeys(_iso_week(d) for d in days))


def ticket_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
                 filters: Filters, *, now: datetime,
                 rekey: Callable[[Any], Any] | None = None,
                 durations: bool = True) -> dict[Any, TicketStats]:
    """Counts, SLA outcomes and (unless ``durations`` is False) durations of the tickets in
    ``window``, grouped by ``key``."""
    where = [*window, *filters.tickets()]
    k = key.label("k")
    columns = [k, func.count(), _count(TicketFact.escalated > 0),
               _count(TicketFact.first_solved_at.is_not(None)),
               _count(and_(TicketFact.first_solved_at.is_not(None), TicketFact.reopened > 0)),
               _count(TicketFact.handed_off.is_(True)),
               _count(TicketFact.first_response_at.is_(None))]
    for target in SLA_TARGETS:
        verdict, due = _sla_columns(target)
        columns += [_count(verdict == "met"), _count(_breached(verdict, due, now))]
    stats: dict[Any, TicketStats] = defaultdict(TicketStats)
    for row in session.execute(select(*columns).where(*where).group_by(k)):
        one = TicketStats()
        (_, one.tickets, one.escalated, one.solved, one.reopened, one.handed_off,
         one.unanswered) = row[:7]
        for i, target in enumerate(SLA_TARGETS):
            one.sla[target] = [row[7 + 2 * i] or 0, row[8 + 2 * i] or 0]
        _merge(stats[_key(row[0], rekey)], one)
    if not durations:
        return dict(stats)
    spans = _distributions(
        session, key, where, {name: column for name, column in DURATIONS.items()}, rekey)
    waits = _distributions(
        session, key, [*where, ReplyWait.seq > 0, ReplyWait.seconds.is_not(None)],
        {"next_response": ReplyWait.seconds, "next_response_bh": ReplyWait.business_seconds},
        rekey, join=True)
    for group, values in (*spans.items(), *waits.items()):
        stats[group].durations.update(values)
    return dict(stats)


def csat_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
               filters: Filters, *, rekey: Callable[[Any], Any] | None = None
               ) -> dict[Any, CsatStats]:
    """Surveys sent and scores given, grouped by ``key`` (surveys counted by sending time)."""
    k = key.label("k")
    stmt = (select(k, TicketFact.csat_score, func.count())
            .where(*window, *filters.surveys()).group_by(k, TicketFact.csat_score))
    stats: dict[Any, CsatStats] = defaultdict(CsatStats)
    for group, score, count in session.execute(stmt):
        stats[_key(group, rekey)].add(score, count)
    return dict(stats)


def conversation_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
                       filters: Filters) -> dict[Any, ConversationStats]:
    k = key.label("k")
    stmt = (select(k, func.count(), _count(ConversationFact.ticket_id.is_(None)),
                   _count(ConversationFact.handed_off.is_(True)))
            .where(*window, *filters.conversations()).group_by(k))
    return {group: ConversationStats(n, contained or 0, handed or 0)
            for group, n, contained, handed in session.execute(stmt)}


def breached_now(session: Session, filters: Filters, *, now: datetime) -> int:
    """Unsolved tickets, created whenever, with a clock breached or running past its deadline."""
    return session.scalar(select(func.count()).where(
        TicketFact.state.in_(OPEN_STATES), breach_clause(now), *filters.tickets())) or 0


def breach_clause(now: datetime) -> ColumnElement[bool]:
    """A ticket with any SLA target breached (including clocks running past their deadline)."""
    return or_(*(_breached(*_sla_columns(target), now) for target in SLA_TARGETS))


def late_clause(target: str, now: datetime) -> ColumnElement[bool]:
    """The tickets that missed ``target``: what a red SLA figure drills into."""
    if target not in SLA_TARGETS:
        raise ValidationError(f"unknown SLA target {target!r}", field="metric")
    return _breached(*_sla_columns(target), now)


def met_clause(target: str) -> ColumnElement[bool]:
    verdict, _ = _sla_columns(target)
    return verdict == "met"


# --- helpers ----------------------------------------------------------------------------------
_DIMENSION_COLUMNS = {
    "agent": (TicketFact.owner_id, TicketFact.survey_agent_id),
    "team": (TicketFact.team_id, TicketFact.survey_team_id),
    "category": (TicketFact.category, TicketFact.category),
    "channel": (TicketFact.channel, TicketFact.channel),
    "tier": (TicketFact.tier, TicketFact.tier),
    "segment": (TicketFact.segment, TicketFact.segment),
    "priority": (TicketFact.priority, TicketFact.priority),
}


def _sla_columns(target: str) -> tuple[Any, Any]:
    return (getattr(TicketFact, f"sla_{target}"), getattr(TicketFact, f"sla_{target}_due_at"))


def _breached(verdict: Any, due: Any, now: datetime) -> ColumnElement[bool]:
    return or_(verdict == "breached", and_(verdict == "pending", due.is_not(None), due < now))


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _distributions(session: Session, key: Any, where: list[Any], columns: dict[str, Any],
                   rekey: Callable[[Any], Any] | None, *, join: bool = False
                   ) -> dict[Any, dict[str, Distribution]]:
    """Median and p90 of each column per group: in SQL on PostgreSQL, in Python elsewhere."""
    k = key.label("k")
    base: Select[Any]
    found: dict[Any, dict[str, Distribution]] = defaultdict(dict)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and rekey is None:
        aggregates = []
        for column in columns.values():
            aggregates += [func.count(column),
                           func.percentile_cont(0.5).within_group(column),
                           func.percentile_cont(0.9).within_group(column)]
        base = select(k, *aggregates)
        if join:
            base = base.select_from(TicketFact).join(ReplyWait,
                                                    ReplyWait.ticket_id == TicketFact.ticket_id)
        for row in session.execute(base.where(*where).group_by(k)):
            for i, name in enumerate(columns):
                n, median, p90 = row[1 + 3 * i: 4 + 3 * i]
                found[row[0]][name] = Distribution(n or 0, _float(median), _float(p90))
        return dict(found)
    base = select(k, *columns.values())
    if join:
        base = base.select_from(TicketFact).join(ReplyWait,
                                                ReplyWait.ticket_id == TicketFact.ticket_id)
    values: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in session.execute(base.where(*where)):
        group = _key(row[0], rekey)
        for name, value in zip(columns, row[1:]):
            if value is not None:
                values[group][name].append(float(value))
    for group, by_name in values.items():
        for name in columns:
            found[group][name] = distribution(by_name.get(name, []))
    return dict(found)


def distribution(values: Sequence[float]) -> Distribution:
    """n, median and p90 by linear interpolation between ranks (``percentile_cont``)."""
    ordered = sorted(values)
    return Distribution(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9))


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _merge(into: TicketStats, one: TicketStats) -> None:
    """Add ``one`` group's counts to ``into`` (weeks are summed from days)."""
    into.tickets += one.tickets
    into.escalated += one.escalated
    into.solved += one.solved
    into.reopened += one.reopened
    into.handed_off += one.handed_off
    into.unanswered += one.unanswered
    for target in SLA_TARGETS:
        into.sla[target] = [a + b for a, b in zip(into.sla[target], one.sla[target])]


def _key(value: Any, rekey: Callable[[Any], Any] | None) -> Any:
    value = getattr(value, "value", value)
    return rekey(value) if rekey is not None and value is not None else value


def _iso_week(day: str | date) -> str:
    value = date.fromisoformat(day) if isinstance(day, str) else day
    year, week, _ = value.isocalendar()
    return f"{year}-W{week:02d}"


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _zone(zone: str | tzinfo) -> tzinfo:
    if isinstance(zone, tzinfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"unknown time zone {zone!r}", field="timezone") from exc


__all__ = [
    "DIMENSIONS", "DURATIONS", "METRICS", "SLA_TARGETS", "ConversationStats", "CsatStats",
    "Distribution", "Filters", "Metric", "Period", "Summary", "TicketStats", "breach_clause",
    "breached_now", "buckets", "counts", "csat_stats", "distribution", "late_clause", "met_clause",
    "percentile", "summary", "table", "ticket_stats", "trend",
]
