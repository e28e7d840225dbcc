"""Every service metric, defined once (docs/metrics.md), computed from the desk's facts.

Windows are half-open ``[since, until)`` in UTC, built from the shop's local days
(:meth:`Period.of_days`). Ticket metrics count tickets by when they reached the desk
(``created_at``: the handoff for a ticket the bot opened, so time with the bot is never
counted); satisfaction counts surveys by when they were sent; conversation metrics count
conversations by when they started. Filters narrow all of them at once (several values of one
filter are alternatives; different filters must all hold). A rate with nothing to divide is
None, and every figure carries its sample size ``n``.

Medians and 90th percentiles interpolate linearly between ranks (PostgreSQL's
``percentile_cont``, which computes them there; SQLite gets the same formula in Python):
:mod:`ticketing.reports.durations`. On PostgreSQL the ticket figures of the whole period, its
days and weeks, its agents and teams, unfiltered or filtered by agent and team, are read from
the day cells (:mod:`ticketing.reports.cells`: the same figures, a fraction of the reading). Counts per group and the SLA clauses:
:mod:`ticketing.reports.tallies`. This module says what each figure is and which of them a
page reads together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import ConversationFact, TicketFact
# reading facts means they must be kept: loading this module turns the listeners on too
from ticketing.desk import facts as _facts  # noqa: F401
from ticketing.reports import cells
from ticketing.reports.aggregates import ConversationStats, CsatStats, TicketStats
from ticketing.reports.durations import (  # noqa: F401  (the metrics' names, importable here)
    ALL_DURATIONS,
    DURATIONS,
    NEXT_RESPONSE,
    group_key,
    in_postgres,
    window_durations,
)
from ticketing.reports.scope import DIMENSIONS, Filters, Period, iso_week
from ticketing.reports.tallies import (  # noqa: F401
    OPEN_STATES,
    breach_clause,
    breached_now,
    conversation_windows,
    csat_stats,
    late_clause,
    met_clause,
    ticket_stats,
    window_stats,
)


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
    parts = summary_parts(period, filters, now=now, durations=durations)
    if cells.serves(session, filters):
        done = {name: parts[name](session) for name in ("tickets", "tickets_before")}
    elif in_postgres(session):  # each span's facts read once for its counts and percentiles
        both = window_stats(session, {True: _created_in(period), False: _created_in(
            period.previous())}, filters, now=now, durations=durations)
        done = {"tickets": both[True], "tickets_before": both[False]}
    else:
        done = {name: parts[name](session) for name in ("tickets", "tickets_before")}
    done["rest"] = parts["rest"](session)
    return assemble_summary(period, done)


SummaryPart = Callable[[Session], Any]


def summary_parts(period: Period, filters: Filters, *, now: datetime,
                  durations: Iterable[str] = ALL_DURATIONS) -> dict[str, SummaryPart]:
    """The summary as three independent reads (this period's tickets, the span before's,
    and the small counts), for a page that runs them at once on connections of their own
    (:func:`assemble_summary` puts their results together): on PostgreSQL the two spans'
    percentiles are the page's heaviest work, and two cores sort them side by side."""
    durations = tuple(durations)
    before = period.previous()

    def tickets_of(span: Period) -> SummaryPart:
        def read(session: Session) -> TicketStats:
            if cells.serves(session, filters):
                return cells.ticket_stats(session, span, filters, "all", now=now,
                                          durations=durations).get(None, TicketStats())
            if in_postgres(session):
                return window_stats(session, {0: _created_in(span)}, filters, now=now,
                                    durations=durations)[0]
            # SQLite: counts in SQL (one group: every ticket of the span is created after
            # its start), percentiles in Python
            stats = ticket_stats(session, TicketFact.created_at >= span.since,
                                 _created_in(span), filters, now=now, durations=()
                                 ).get(True, TicketStats())
            stats.durations.update(window_durations(session, _created_in(span), filters,
                                                    durations))
            return stats
        return read

    def rest(session: Session) -> tuple[dict[Any, CsatStats], dict[Any, ConversationStats], int]:
        survey_flag = TicketFact.survey_sent_at >= period.since
        csat = csat_stats(session, survey_flag,
                          (TicketFact.survey_sent_at >= before.since,
                           TicketFact.survey_sent_at < period.until), filters)
        chats = conversation_windows(session, {True: _started_in(period),
                                               False: _started_in(before)}, filters)
        return csat, chats, breached_now(session, filters, now=now)

    return {"tickets": tickets_of(period), "tickets_before": tickets_of(before), "rest": rest}


def assemble_summary(period: Period, done: dict[str, Any]) -> Summary:
    """The :class:`Summary` from the results of :func:`summary_parts`, by their names."""
    csat, chats, breached = done["rest"]
    return Summary(
        period=period, previous=period.previous(),
        tickets=done["tickets"], tickets_before=done["tickets_before"],
        csat=csat.get(True, CsatStats()), csat_before=csat.get(False, CsatStats()),
        conversations=chats.get(True, ConversationStats()),
        conversations_before=chats.get(False, ConversationStats()),
        breached_now=breached,
    )


def counts(session: Session, period: Period, filters: Filters, dimension: str, *,
           now: datetime) -> dict[Any, TicketStats]:
    """Tickets per dimension value (contact reasons): the count alone, one grouped count
    (a quarter of the figures' cost: no SLA clauses, no durations). ``now`` is unused and kept
    for the callers' uniform signature."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    if dimension == "category" and cells.serves(session, filters):
        return {category: TicketStats(tickets=n) for category, n in
                cells.category_counts(session, period, filters).items()}
    key = _DIMENSION_COLUMNS[dimension][0].label("k")
    rows = session.execute(select(key, func.count()).where(*_created_in(period),
                                                           *filters.tickets()).group_by(key))
    return {group_key(k, None): TicketStats(tickets=n) for k, n in rows}


def table(session: Session, period: Period, filters: Filters, dimension: str, *,
          now: datetime, durations: Iterable[str] = ALL_DURATIONS
          ) -> tuple[dict[Any, TicketStats], dict[Any, CsatStats]]:
    """Ticket and satisfaction figures per agent, team, category, channel, tier, segment or
    priority (satisfaction per the agent and team the survey was credited to)."""
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    ticket_key, survey_key = _DIMENSION_COLUMNS[dimension]
    if dimension in ("agent", "team") and cells.serves(session, filters):
        stats = cells.ticket_stats(session, period, filters, dimension, now=now,
                                   durations=durations)
    else:
        stats = ticket_stats(session, ticket_key, _created_in(period), filters, now=now,
                             durations=durations)
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
    survey_window = (TicketFact.survey_sent_at >= period.since,
                     TicketFact.survey_sent_at < period.until)
    day_key: Any = TicketFact.created_day
    survey_key: Any = TicketFact.survey_day
    rekey = None
    if grain == "week":
        if in_postgres(session):  # weeks in SQL, percentiles there
            day_key, survey_key = _pg_iso_week(day_key), _pg_iso_week(survey_key)
        else:  # days summed into weeks here; percentiles from every value (SQLite)
            rekey = iso_week
    if cells.serves(session, filters):
        stats = cells.ticket_stats(session, period, filters, grain, now=now,
                                   durations=durations)
    else:
        stats = ticket_stats(session, day_key, _created_in(period), filters, now=now,
                             rekey=rekey, durations=durations)
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
    if in_postgres(session):
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


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


def _created_in(period: Period) -> tuple[Any, Any]:
    return (TicketFact.created_at >= period.since, TicketFact.created_at < period.until)


def _started_in(period: Period) -> tuple[Any, Any]:
    return (ConversationFact.started_at >= period.since,
            ConversationFact.started_at < period.until)
