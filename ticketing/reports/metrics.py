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

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, null, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import ConversationFact, ReplyWait, TicketFact
# reading facts means they must be kept: loading this module turns the listeners on too
from ticketing.desk import facts as _facts  # noqa: F401
from ticketing.reports.aggregates import (
    SLA_TARGETS,
    ConversationStats,
    CsatStats,
    Distribution,
    TicketStats,
    distribution,
    merge,
)
from ticketing.reports.scope import DIMENSIONS, Filters, Period, iso_week

# --- what is measured ---------------------------------------------------------------------
DURATIONS = {  # name -> fact column (seconds)
    "first_response": TicketFact.first_response_s,
    "first_response_bh": TicketFact.first_response_bh_s,
    "resolution_first": TicketFact.resolution_first_s,
    "resolution_first_bh": TicketFact.resolution_first_bh_s,
    "resolution_last": TicketFact.resolution_last_s,
    "resolution_last_bh": TicketFact.resolution_last_bh_s,
}
NEXT_RESPONSE = ("next_response", "next_response_bh")
ALL_DURATIONS = (*DURATIONS, *NEXT_RESPONSE)
OPEN_STATES = ("new", "open", "waiting_customer")


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
def summary(session: Session, period: Period, filters: Filters, *, now: datetime,
            durations: Iterable[str] = ALL_DURATIONS) -> Summary:
    """Everything on the dashboard's first row, for ``period`` and the span before it
    (``durations``: the medians and p90s wanted, every one unless told)."""
    before = period.previous()
    # boolean keys: PostgreSQL knows they make two groups; for a CASE it guesses one group a
    # row, and sorted the window's rows (on disk) instead of hashing them
    flag = TicketFact.created_at >= period.since
    window = (TicketFact.created_at >= before.since, TicketFact.created_at < period.until)
    stats = ticket_stats(session, flag, window, filters, now=now, durations=())
    stats = {key: stats.get(key, TicketStats()) for key in (True, False)}
    for key, span in ((True, period), (False, before)):  # percentiles: no grouping, no sort
        stats[key].durations.update(window_durations(
            session, (TicketFact.created_at >= span.since, TicketFact.created_at < span.until),
            filters, durations))
    survey_flag = TicketFact.survey_sent_at >= period.since
    csat = csat_stats(session, survey_flag,
                      (TicketFact.survey_sent_at >= before.since,
                       TicketFact.survey_sent_at < period.until), filters)
    chat_flag = ConversationFact.started_at >= period.since
    chats = conversation_stats(session, chat_flag,
                               (ConversationFact.started_at >= before.since,
                                ConversationFact.started_at < period.until), filters)
    return Summary(
        period=period, previous=before,
        tickets=stats.get(True, TicketStats()), tickets_before=stats.get(False, TicketStats()),
        csat=csat.get(True, CsatStats()), csat_before=csat.get(False, CsatStats()),
        conversations=chats.get(True, ConversationStats()),
        conversations_before=chats.get(False, ConversationStats()),
        breached_now=breached_now(session, filters, now=now),
    )


def counts(session: Session, period: Period, filters: Filters, dimension: str, *,
           now: datetime) -> dict[Any, TicketStats]:
    """Ticket counts and SLA outcomes per dimension, without durations (contact reasons)."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    return ticket_stats(session, _DIMENSION_COLUMNS[dimension][0], window, filters, now=now,
                        durations=())


def table(session: Session, period: Period, filters: Filters, dimension: str, *,
          now: datetime, durations: Iterable[str] = ALL_DURATIONS
          ) -> tuple[dict[Any, TicketStats], dict[Any, CsatStats]]:
    """Ticket and satisfaction figures per agent, team, category, channel, tier, segment or
    priority (satisfaction per the agent and team the survey was credited to)."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    ticket_key, survey_key = _DIMENSION_COLUMNS[dimension]
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    stats = ticket_stats(session, ticket_key, window, filters, now=now, durations=durations)
    csat = csat_stats(session, survey_key,
                      (TicketFact.survey_sent_at >= period.since,
                       TicketFact.survey_sent_at < period.until), filters)
    return stats, csat


def trend(session: Session, period: Period, filters: Filters, grain: str, *,
          now: datetime, durations: Iterable[str] = ALL_DURATIONS
          ) -> tuple[dict[str, TicketStats], dict[str, CsatStats]]:
    """Figures per local day (``2026-11-03``) or ISO week (``2026-W45``) of the period."""
    if grain not in ("day", "week"):
        raise ValidationError("grain is day or week", field="grain")
    window = (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)
    survey_window = (TicketFact.survey_sent_at >= period.since,
                     TicketFact.survey_sent_at < period.until)
    day_key: Any = TicketFact.created_day
    survey_key: Any = TicketFact.survey_day
    rekey = None
    if grain == "week":
        if session.get_bind().dialect.name == "postgresql":  # weeks in SQL, percentiles there
            day_key, survey_key = _pg_iso_week(day_key), _pg_iso_week(survey_key)
        else:  # days summed into weeks here; percentiles from every value (SQLite)
            rekey = iso_week
    stats = ticket_stats(session, day_key, window, filters, now=now, rekey=rekey,
                         durations=durations)
    csat = csat_stats(session, survey_key, survey_window, filters, rekey=rekey)
    return stats, csat


def _pg_iso_week(day: Any) -> Any:
    """``2026-W45`` of a local ``YYYY-MM-DD`` column, as ``scope.iso_week`` writes it."""
    return func.to_char(func.to_date(day, "YYYY-MM-DD"), 'IYYY-"W"IW')


def buckets(period: Period, grain: str) -> list[str]:
    """The trend's x axis: every day or week of the period, with or without data."""
    days = [d.isoformat() for d in period.days()]
    return days if grain == "day" else list(dict.fromkeys(iso_week(d) for d in days))


def use_report_memory(session: Session) -> None:
    """Every median is a sort of a period's values: let PostgreSQL keep them in memory; and no
    parallel workers: a dashboard already runs its four reads at once, and on a small machine
    helpers for each of them fought over the same cores (a count query took 100 ms alone and
    ~3 processes' CPU for 70 ms with workers). For this transaction only."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def window_durations(session: Session, window: Iterable[ColumnElement[bool]], filters: Filters,
                     durations: Iterable[str]) -> dict[str, Distribution]:
    """The ``durations`` named over all the tickets in ``window`` (one group)."""
    where = [*window, *filters.tickets()]
    return _durations(session, None, where, set(durations), None).get(None, {})


def _durations(session: Session, key: Any, where: list[Any], wanted: set[str],
               rekey: Callable[[Any], Any] | None) -> dict[Any, dict[str, Distribution]]:
    columns = {name: column for name, column in DURATIONS.items() if name in wanted}
    found = _distributions(session, key, where, columns, rekey) if columns else {}
    waited = {name: column for name, column in (("next_response", ReplyWait.seconds),
                                                ("next_response_bh", ReplyWait.business_seconds))
              if name in wanted}
    if waited:
        waits = _distributions(
            session, key, [*where, ReplyWait.seq > 0, ReplyWait.seconds.is_not(None),
                           *_wait_bounds(where)], waited, rekey, join=True)
        for group, values in waits.items():
            found.setdefault(group, {}).update(values)
    return found


def _wait_bounds(where: list[Any]) -> list[ColumnElement[bool]]:
    """The lowest and highest ticket id among the tickets in ``where``, as bounds on the reply
    waits' ticket ids: redundant with the join (always true of its rows), but they let the
    database read only that stretch of the waits' index instead of every answered wait ever
    (tickets are numbered as they come, so a month's tickets are a narrow id range: at a
    million tickets the 30-day next-response percentiles went from ~480 to ~190 ms).
    ``ticket_id + 0``: with a bare column PostgreSQL answers min/max by walking the primary
    key from one end and filtering on the window, which reads most of the table."""
    bounds = (select(func.min(TicketFact.ticket_id + 0).label("low"),
                     func.max(TicketFact.ticket_id + 0).label("high"))
              .where(*where).correlate(None).cte("wait_bounds"))  # one scan for both ends
    return [ReplyWait.ticket_id >= select(bounds.c.low).scalar_subquery(),
            ReplyWait.ticket_id <= select(bounds.c.high).scalar_subquery()]


def ticket_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
                 filters: Filters, *, now: datetime,
                 rekey: Callable[[Any], Any] | None = None,
                 durations: Iterable[str] = ALL_DURATIONS) -> dict[Any, TicketStats]:
    """Counts, SLA outcomes and the ``durations`` named (each median is a sort of the
    window's values, so callers ask for what they show) of the tickets in ``window``,
    grouped by ``key``."""
    wanted = set(durations)
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
        merge(stats[_key(row[0], rekey)], one)
    for group, values in _durations(session, key, where, wanted, rekey).items():
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
    """``count(*) FILTER (WHERE …)``: PostgreSQL and SQLite (3.30+) skip the rows cheaply, where
    ``sum(CASE …)`` evaluated an expression per row and condition."""
    return func.count().filter(condition)


def _distributions(session: Session, key: Any, where: list[Any], columns: dict[str, Any],
                   rekey: Callable[[Any], Any] | None, *, join: bool = False
                   ) -> dict[Any, dict[str, Distribution]]:
    """Median and p90 of each column per group (``key`` None: one group, no GROUP BY): in
    SQL on PostgreSQL, in Python elsewhere."""
    k = (null() if key is None else key).label("k")
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
        stmt = base.where(*where)
        for row in session.execute(stmt if key is None else stmt.group_by(k)):
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


def _key(value: Any, rekey: Callable[[Any], Any] | None) -> Any:
    value = getattr(value, "value", value)
    return rekey(value) if rekey is not None and value is not None else value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
