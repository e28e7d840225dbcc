"""Counts per group (docs/metrics.md): tickets with their SLA outcomes (and, on PostgreSQL,
their durations in the same statement), surveys with their scores, the assistant's
conversations, and the clauses that say which tickets missed or met a target.

A group is a value of ``key`` (an agent, a day, "this period"...) or a window of its own
(:func:`window_stats`: this period and the one before, each read once). ``count(*) FILTER``
throughout: PostgreSQL and SQLite (3.30+) skip the rows cheaply, where ``sum(CASE …)``
evaluated an expression per row and condition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.errors import ValidationError
from ticketing.core.models import ConversationFact, ReplyWait, TicketFact
from ticketing.reports.aggregates import (
    SLA_TARGETS,
    ConversationStats,
    CsatStats,
    Distribution,
    TicketStats,
    merge,
)
from ticketing.reports.durations import (
    ALL_DURATIONS,
    Bounds,
    Rekey,
    fact_columns,
    group_key,
    grouped_durations,
    id_range,
    in_postgres,
    percentile_columns,
    read_percentiles,
    wait_columns,
    wait_durations,
)
from ticketing.reports.scope import Filters

OPEN_STATES = ("new", "open", "waiting_customer")
Window = Sequence[ColumnElement[bool]]


# --- tickets ----------------------------------------------------------------------------------
def ticket_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
                 filters: Filters, *, now: datetime, rekey: Rekey = None,
                 durations: Iterable[str] = ALL_DURATIONS) -> dict[Any, TicketStats]:
    """Counts, SLA outcomes and the ``durations`` named (each median is a sort of the
    window's values, so callers ask for what they show) of the tickets in ``window``,
    grouped by ``key``. PostgreSQL reads the window once for the counts and the facts'
    percentiles (sorted into groups once, instead of hashed for the counts and sorted again
    for the percentiles); SQLite counts in SQL and takes the percentiles in Python."""
    wanted = set(durations)
    where = [*window, *filters.tickets()]
    if in_postgres(session) and rekey is None:
        return _grouped_in_one(session, key, where, wanted, now)
    k = key.label("k")
    stats: dict[Any, TicketStats] = defaultdict(TicketStats)
    for row in session.execute(select(k, *_count_columns(now)).where(*where).group_by(k)):
        merge(stats[group_key(row[0], rekey)], read_counts(row, 1))
    for group, values in grouped_durations(session, key, where, wanted, rekey).items():
        stats[group].durations.update(values)
    return dict(stats)


def _grouped_in_one(session: Session, key: Any, where: list[Any], wanted: set[str],
                    now: datetime) -> dict[Any, TicketStats]:
    k = key.label("k")
    columns = fact_columns(wanted)
    waits = wait_columns(wanted)
    first = 1 + len(_count_columns(now))
    stmt = select(k, *_count_columns(now), *percentile_columns(columns),
                  *(_id_bounds() if waits else ())).where(*where).group_by(k)
    stats: dict[Any, TicketStats] = {}
    lows, highs = [], []
    for row in session.execute(stmt):
        one = read_counts(row, 1)
        one.durations.update(read_percentiles(row, first, columns))
        stats[group_key(row[0], None)] = one
        if waits:
            lows.append(row[-2])
            highs.append(row[-1])
    if waits and stats:  # the ids of every group's tickets: one stretch of the waits' index
        for group, values in wait_durations(session, key, where, waits, None,
                                            bounds=(min(lows), max(highs))).items():
            stats[group].durations.update(values)
    return stats


def window_stats(session: Session, windows: dict[Any, Window], filters: Filters, *,
                 now: datetime, durations: Iterable[str] = ALL_DURATIONS
                 ) -> dict[Any, TicketStats]:
    """PostgreSQL: counts, SLA outcomes and the ``durations`` named of the tickets of each
    window (this period and the one before), in one statement of one aggregate per window
    (UNION ALL): each window's facts are read once, for the counts and the percentiles alike,
    and nothing is grouped or sorted but the percentiles' values. The next responses follow
    in a second statement, each window's waits bounded by its tickets' ids from the first.
    Every window gets a figure, empty ones zeros."""
    wanted = set(durations)
    columns, waits = fact_columns(wanted), wait_columns(wanted)
    keys = list(windows)
    first = 1 + len(_count_columns(now))
    branches = [select(literal_column(str(i)).label("w"), *_count_columns(now),
                       *percentile_columns(columns), *(_id_bounds() if waits else ()))
                .where(*windows[key], *filters.tickets()) for i, key in enumerate(keys)]
    stats: dict[Any, TicketStats] = {}
    bounds: dict[int, Bounds] = {}
    for row in session.execute(branches[0] if len(branches) == 1 else union_all(*branches)):
        one = read_counts(row, 1)
        one.durations.update(read_percentiles(row, first, columns))
        stats[keys[row[0]]] = one
        if waits and row[-2] is not None:
            bounds[row[0]] = (row[-2], row[-1])
    if waits:
        answered = _window_waits(session, {i: [*windows[keys[i]], *filters.tickets()]
                                           for i in bounds}, waits, bounds)
        for i, key in enumerate(keys):
            stats[key].durations.update(answered.get(i) or {
                name: Distribution(0, None, None) for name in waits})
    return stats


def _window_waits(session: Session, wheres: dict[int, list[Any]], waits: dict[str, Any],
                  bounds: dict[int, Bounds]) -> dict[int, dict[str, Distribution]]:
    """Next-response percentiles per window (one aggregate each, UNION ALL)."""
    if not wheres:
        return {}
    branches = [select(literal_column(str(i)).label("w"), *percentile_columns(waits))
                .select_from(TicketFact)
                .join(ReplyWait, ReplyWait.ticket_id == TicketFact.ticket_id)
                .where(*where, ReplyWait.seq > 0, ReplyWait.seconds.is_not(None),
                       *id_range(bounds[i]))
                for i, where in wheres.items()]
    stmt = branches[0] if len(branches) == 1 else union_all(*branches)
    return {row[0]: read_percentiles(row, 1, waits) for row in session.execute(stmt)}


def count_conditions() -> list[ColumnElement[bool] | None]:
    """Which tickets each of :class:`TicketStats`' six counts counts, in its order (tickets,
    escalated, solved, reopened, handed off, unanswered; None: every ticket)."""
    return [None, TicketFact.escalated > 0, TicketFact.first_solved_at.is_not(None),
            and_(TicketFact.first_solved_at.is_not(None), TicketFact.reopened > 0),
            TicketFact.handed_off.is_(True), TicketFact.first_response_at.is_(None)]


def _count_columns(now: datetime) -> list[Any]:
    columns = [func.count() if condition is None else _count(condition)
               for condition in count_conditions()]
    for target in SLA_TARGETS:
        verdict, due = sla_columns(target)
        columns += [_count(verdict == "met"), _count(_breached(verdict, due, now))]
    return columns


def read_counts(row: Any, start: int) -> TicketStats:
    """The six counts and each target's met and breached, from ``row`` at ``start`` in
    :func:`count_conditions`' order (the day cells' sums come in the same order)."""
    one = TicketStats()
    (one.tickets, one.escalated, one.solved, one.reopened, one.handed_off,
     one.unanswered) = (value or 0 for value in row[start:start + 6])
    for i, target in enumerate(SLA_TARGETS):
        at = start + 6 + 2 * i
        one.sla[target] = [row[at] or 0, row[at + 1] or 0]
    return one


def _id_bounds() -> list[Any]:
    """The lowest and highest ticket id of a group (its reply waits' stretch of the index)."""
    return [func.min(TicketFact.ticket_id), func.max(TicketFact.ticket_id)]


# --- surveys and conversations ----------------------------------------------------------------
def csat_stats(session: Session, key: Any, window: Iterable[ColumnElement[bool]],
               filters: Filters, *, rekey: Rekey = None) -> dict[Any, CsatStats]:
    """Surveys sent and scores given, grouped by ``key`` (surveys counted by sending time)."""
    k = key.label("k")
    stmt = (select(k, TicketFact.csat_score, func.count())
            .where(*window, *filters.surveys()).group_by(k, TicketFact.csat_score))
    stats: dict[Any, CsatStats] = defaultdict(CsatStats)
    for group, score, count in session.execute(stmt):
        stats[group_key(group, rekey)].add(score, count)
    return dict(stats)


def conversation_windows(session: Session, windows: dict[Any, Window], filters: Filters
                         ) -> dict[Any, ConversationStats]:
    """Conversations, contained and handed off, of each window: one aggregate per window
    (UNION ALL), no grouping. Every window gets a figure, empty ones zeros."""
    keys = list(windows)
    branches = [select(literal_column(str(i)).label("w"), func.count(),
                       _count(ConversationFact.ticket_id.is_(None)),
                       _count(ConversationFact.handed_off.is_(True)))
                .where(*windows[key], *filters.conversations()) for i, key in enumerate(keys)]
    stmt = branches[0] if len(branches) == 1 else union_all(*branches)
    return {keys[w]: ConversationStats(n or 0, contained or 0, handed or 0)
            for w, n, contained, handed in session.execute(stmt)}


# --- SLA verdicts -----------------------------------------------------------------------------
def breached_now(session: Session, filters: Filters, *, now: datetime) -> int:
    """Unsolved tickets, created whenever, with a clock breached or running past its deadline."""
    return session.scalar(select(func.count()).where(
        TicketFact.state.in_(OPEN_STATES), breach_clause(now), *filters.tickets())) or 0


def breach_clause(now: datetime) -> ColumnElement[bool]:
    """A ticket with any SLA target breached (including clocks running past their deadline)."""
    return or_(*(_breached(*sla_columns(target), now) for target in SLA_TARGETS))


def late_clause(target: str, now: datetime) -> ColumnElement[bool]:
    """The tickets that missed ``target``: what a red SLA figure drills into."""
    if target not in SLA_TARGETS:
        raise ValidationError(f"unknown SLA target {target!r}", field="metric")
    return _breached(*sla_columns(target), now)


def met_clause(target: str) -> ColumnElement[bool]:
    verdict, _ = sla_columns(target)
    return verdict == "met"


def sla_columns(target: str) -> tuple[Any, Any]:
    return (getattr(TicketFact, f"sla_{target}"), getattr(TicketFact, f"sla_{target}_due_at"))


def _breached(verdict: Any, due: Any, now: datetime) -> ColumnElement[bool]:
    return or_(verdict == "breached", and_(verdict == "pending", due.is_not(None), due < now))


def _count(condition: ColumnElement[bool]) -> Any:
    """``count(*) FILTER (WHERE …)``."""
    return func.count().filter(condition)
