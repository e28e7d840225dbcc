"""The dashboard's figures from day cells (PostgreSQL): a local day's ticket facts summed per
owner and team (:class:`~ticketing.core.models.ReportCell`), durations packed as bytes.

Every figure means what :mod:`ticketing.reports.metrics` defines; only the reading differs. A
period is its built days' cells plus, for the days changed since their cells were built (a
:class:`~ticketing.core.models.ReportMark`) or never built, the same cells worked out from the
facts in the same statement, so a figure is never staler than the facts. The rows are summed
per group in SQL and each group's values arrive concatenated: the median and p90 are the
order statistics picked from them (``numpy.partition``, linear time, interpolated as
``percentile_cont`` does), where the facts' path sorted every value of every group.

Cells know the owner, the team and the day, so they answer the unfiltered dashboard, its
agent and team filters, its tables by agent and team and its trends; any other filter reads
the facts (:func:`serves`). :mod:`ticketing.reports.cell_builds` builds them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import (
    Integer, LargeBinary, SmallInteger, and_, bindparam, case, cast, exists, func, literal,
    literal_column, null, or_, select, union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.clock import aware
from ticketing.core.models import (
    Category, ReplyWait, ReportCell, ReportDay, ReportMark, TicketFact,
)
# cells are only true while every fact change marks its day: loading this turns that on too
from ticketing.desk import facts as _facts  # noqa: F401
from ticketing.reports.aggregates import SLA_TARGETS, Distribution, TicketStats, percentile
from ticketing.reports.durations import DURATIONS, WAITS, in_postgres, wait_bounds
from ticketing.reports.scope import Filters, Period
from ticketing.reports.tallies import count_conditions, read_counts, sla_columns

COUNTS = ("tickets", "escalated", "solved", "reopened", "handed_off", "unanswered")
VALUES = (*DURATIONS, *WAITS)  # packed durations, named as the durations
PACKED = (*VALUES, "categories")  # and each ticket's category, for the contact reasons
CATEGORIES = [c.value for c in Category]  # a category's code is its place here
GROUPS = ("all", "day", "week", "agent", "team")
_EMPTY = literal_column("''::bytea")
_NONE = cast(null(), LargeBinary)  # a value not asked for


def serves(session: Session, filters: Filters, group: str = "all") -> bool:
    """Whether the cells can answer: PostgreSQL, agent and team filters only, a group cells
    know."""
    return in_postgres(session) and filters.by_owner_only() and group in GROUPS


def ticket_stats(session: Session, period: Period, filters: Filters, group: str, *,
                 now: datetime, durations: Iterable[str]) -> dict[Any, TicketStats]:
    """Counts, SLA outcomes (breaches as of ``now``) and the ``durations`` named of the
    period's tickets per ``group`` ("all": one group keyed None; "day": ``YYYY-MM-DD``;
    "week": ``2026-W45``; "agent", "team": their ids, None for none)."""
    wanted = tuple(name for name in VALUES if name in set(durations))
    params, runs = _period_params(session, period)
    stmt = _ticket_statement(group, wanted, runs, _owner_shape(filters))
    cutoff = aware(now).timestamp()
    with _binary_results(session):
        rows = session.execute(stmt, {**params, **_owner_params(filters)}).all()
    return {row[0]: _stats(row, cutoff, wanted) for row in rows}


def category_counts(session: Session, period: Period, filters: Filters) -> dict[str, int]:
    """Tickets per category (contact reasons) of the period: each ticket's code, counted."""
    params, runs = _period_params(session, period)
    stmt = _category_statement(runs, _owner_shape(filters))
    with _binary_results(session):
        packed = session.execute(stmt, {**params, **_owner_params(filters)}).scalar()
    if not packed:
        return {}
    counts = np.bincount(np.frombuffer(packed, dtype=">i2").astype(np.int64),
                         minlength=len(CATEGORIES))
    return {CATEGORIES[i]: int(n) for i, n in enumerate(counts) if n}


# --- statements, built once per shape -----------------------------------------------------------
# Building these statements (a union of ~30 labelled columns, a subquery, its cache key) cost
# a dashboard ~50 ms of Python a request, holding the GIL its other reads wanted; each shape
# (group, values wanted, runs of changed days, which owner filters) is built once, its values
# bound at execution.
@lru_cache(maxsize=256)
def _ticket_statement(group: str, wanted: tuple[str, ...], runs: int, owners: OwnerShape
                      ) -> Any:
    cells = period_cells(wanted, runs).subquery("cells")
    key = _group_key(cells, group)
    columns = [key.label("k"), *(func.sum(cells.c[name]) for name in _count_names()),
               *(_joined(cells.c[f"sla_{t}_pending"]) for t in SLA_TARGETS),
               *(_joined(cells.c[name]) for name in wanted)]
    stmt = select(*columns).where(*_owner_clauses(owners, cells.c.owner_id, cells.c.team_id))
    return stmt if group == "all" else stmt.group_by(key)


@lru_cache(maxsize=64)
def _category_statement(runs: int, owners: OwnerShape) -> Any:
    cells = period_cells(("categories",), runs).subquery("cells")
    return select(_joined(cells.c.categories)).where(
        *_owner_clauses(owners, cells.c.owner_id, cells.c.team_id))


OwnerShape = tuple[tuple[bool, bool] | None, tuple[bool, bool] | None]


def _owner_shape(filters: Filters) -> OwnerShape:
    """Per agent and team filter: None (not set) or (named values?, "unassigned"?)."""
    def one(values: tuple[Any, ...]) -> tuple[bool, bool] | None:
        return (any(v is not None for v in values), None in values) if values else None
    return one(filters.agents), one(filters.teams)


def _owner_params(filters: Filters) -> dict[str, list[int]]:
    return {"agents": [v for v in filters.agents if v is not None],
            "teams": [v for v in filters.teams if v is not None]}


def _owner_clauses(owners: OwnerShape, owner: Any, team: Any) -> list[ColumnElement[bool]]:
    """The agent and team filters as :class:`Filters` states them (several values are
    alternatives; None is "unassigned"), their values bound at execution."""
    clauses: list[ColumnElement[bool]] = []
    for shape, name, column in ((owners[0], "agents", owner), (owners[1], "teams", team)):
        if shape is None:
            continue
        named, unassigned = shape
        either = [column.in_(bindparam(name, expanding=True))] if named else []
        either += [column.is_(None)] if unassigned else []
        clauses.append(or_(*either))
    return clauses


@contextmanager
def _binary_results(session: Session) -> Iterator[None]:
    """Rows in PostgreSQL's binary format for the statements run meanwhile: the values
    arrive as the bytes they are, where the text format doubled them into hex that the
    reading thread decoded holding the GIL (28 ms of a 30-day dashboard's ~8 MB)."""
    raw = session.connection().connection.driver_connection
    previous = raw.cursor_factory
    raw.cursor_factory = _BinaryCursor
    try:
        yield
    finally:
        raw.cursor_factory = previous


class _BinaryCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Any:
        return super().execute(query, params, prepare=prepare, binary=True)


def _group_key(cells: Any, group: str) -> Any:
    if group == "all":
        return null()
    if group == "week":  # as scope.iso_week writes it
        return func.to_char(func.to_date(cells.c.day, "YYYY-MM-DD"), 'IYYY-"W"IW')
    return cells.c[{"day": "day", "agent": "owner_id", "team": "team_id"}[group]]


# --- the cells of a period ---------------------------------------------------------------------
def period_cells(wanted: Collection[str], runs: int) -> Any:
    """The period's cells: stored ones for its built, unchanged days, the facts' for the rest
    (``runs`` stretches of consecutive changed days; one ``UNION ALL``; which day is which is
    read first, so none is counted twice), with the ``wanted`` values (the others NULL:
    neither read nor packed). Values bound: ``first`` and ``last`` day, the ``live`` days,
    ``since_i``/``until_i`` of each stretch (:func:`_period_params`)."""
    table = ReportCell.__table__.c
    day = ReportCell.__table__.c.day.type
    stored = _named(*(table[n] if n not in PACKED or n in wanted else _NONE
                      for n in stored_names())).where(
        ReportCell.day >= bindparam("first", type_=day),
        ReportCell.day <= bindparam("last", type_=day),
        ReportCell.day.not_in(bindparam("live", type_=day, expanding=True)))
    at = TicketFact.__table__.c.created_at.type
    window = [or_(*(and_(TicketFact.created_at >= bindparam(f"since_{i}", type_=at),
                         TicketFact.created_at < bindparam(f"until_{i}", type_=at))
                    for i in range(runs)))]
    return union_all(stored, *fact_rows(window, wanted))


def _period_params(session: Session, period: Period) -> tuple[dict[str, Any], int]:
    """The values :func:`period_cells` binds, and its number of stretches. With no changed
    day the facts' part reads an empty stretch: one shape whatever the days' state (the
    desk's warm-up compiles it)."""
    days = [d.isoformat() for d in period.days()]
    live = sorted(changed_days(session, days))
    params: dict[str, Any] = {"first": days[0], "last": days[-1], "live": live}
    stretches = _stretches(live, period) or [(period.until, period.until)]
    for i, (since, until) in enumerate(stretches):
        params[f"since_{i}"], params[f"until_{i}"] = since, until
    return params, len(stretches)


def changed_days(session: Session, days: Sequence[str]) -> set[str]:
    """The days among ``days`` whose cells are missing or out of date."""
    built: set[str] = set()
    marked: set[str] = set()
    for day, is_mark in session.execute(_changed_statement(), {"first": days[0],
                                                               "last": days[-1],
                                                               "days": list(days)}):
        (marked if is_mark else built).add(day)
    return {d for d in days if d not in built or d in marked}


@lru_cache(maxsize=1)
def _changed_statement() -> Any:
    """The built days between ``first`` and ``last`` and which of ``days`` have a mark: one
    round trip, and one probe of the marks' index a day, however many marks wait (a shop
    without a running reports job piles them up)."""
    day = ReportDay.__table__.c.day.type
    asked = func.unnest(bindparam("days", type_=ARRAY(day))).table_valued("day").render_derived()
    return union_all(
        select(ReportDay.day, literal(False)).where(ReportDay.day >= bindparam("first", type_=day),
                                                    ReportDay.day <= bindparam("last", type_=day)),
        select(asked.c.day, literal(True)).where(exists().where(ReportMark.day == asked.c.day)))


def cells_of_facts(window: Sequence[ColumnElement[bool]]) -> Any:
    """The cells of the tickets in ``window``, worked out from the facts and grouped as
    stored (what a build writes)."""
    rows = union_all(*fact_rows(window)).subquery("facts")
    key = [rows.c.day, rows.c.owner_id, rows.c.team_id]
    names = stored_names()[3:]
    return select(*key, *(func.sum(rows.c[n]) if n in _count_names() else _joined(rows.c[n])
                          for n in names)).group_by(*key)


def fact_rows(window: Sequence[ColumnElement[bool]],
              wanted: Collection[str] = PACKED) -> list[Any]:
    """The tickets in ``window`` as cell-shaped rows, in :class:`ReportCell`'s column order:
    one per ticket (counts 0 or 1, its ``wanted`` durations packed) and, when next responses
    are wanted, one per answered next wait. A changed day's rows go straight into the
    period's sums: grouping them into cells first cost more than it saved."""

    def packed(name: str, column: Any) -> Any:
        return func.float8send(column) if name in wanted else _NONE

    key = [TicketFact.created_day, TicketFact.owner_id, TicketFact.team_id]
    one = [literal(1, Integer)] + [case((condition, 1), else_=0) for condition
                                   in count_conditions()[1:]]
    for target in SLA_TARGETS:
        verdict, due = sla_columns(target)
        one += [case((verdict == "met", 1), else_=0), case((verdict == "breached", 1), else_=0),
                case((and_(verdict == "pending", due.is_not(None)),
                      func.float8send(func.date_part("epoch", due))))]
    code = cast(case({v: i for i, v in enumerate(CATEGORIES)}, value=TicketFact.category),
                SmallInteger)
    facts = _named(*key, *one, *(packed(n, c) for n, c in DURATIONS.items()),
                   *(_NONE for _ in WAITS),
                   func.int2send(code) if "categories" in wanted else _NONE).where(*window)
    if not any(name in wanted for name in WAITS):
        return [facts]
    zeros: list[Any] = [literal(0, Integer)] * len(COUNTS)
    for _ in SLA_TARGETS:
        zeros += [literal(0, Integer), literal(0, Integer), _NONE]
    waits = (_named(*key, *zeros, *(_NONE for _ in DURATIONS),
                    *(packed(n, c) for n, c in WAITS.items()), _NONE)
             .select_from(TicketFact)
             .join(ReplyWait, ReplyWait.ticket_id == TicketFact.ticket_id)
             .where(*window, ReplyWait.seq > 0, ReplyWait.seconds.is_not(None),
                    *wait_bounds(list(window))))
    return [facts, waits]


def _named(*columns: Any) -> Any:
    return select(*(c.label(name) for c, name in zip(columns, stored_names(), strict=True)))


def _stretches(days: Sequence[str], period: Period) -> list[tuple[datetime, datetime]]:
    """``days`` (local days of ``period``'s zone) as runs of consecutive days, each the
    ``[since, until)`` of ``created_at`` that its index answers."""
    runs: list[list[date]] = []
    for text in days:
        day = date.fromisoformat(text)
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    spans = [Period.of_days(first, last, period.zone) for first, last in runs]
    return [(span.since, span.until) for span in spans]


# --- columns -----------------------------------------------------------------------------------
def _count_names() -> list[str]:
    names = list(COUNTS)
    for target in SLA_TARGETS:
        names += [f"sla_{target}_met", f"sla_{target}_breached"]
    return names


def stored_names() -> list[str]:
    """:class:`ReportCell`'s columns but its id, in :func:`cells_of_facts`' order."""
    names = ["day", "owner_id", "team_id", *COUNTS]
    for target in SLA_TARGETS:
        names += [f"sla_{target}_met", f"sla_{target}_breached", f"sla_{target}_pending"]
    return [*names, *PACKED]


def _joined(column: Any) -> Any:
    return func.string_agg(column, _EMPTY)


# --- from rows to figures ----------------------------------------------------------------------
def _stats(row: Sequence[Any], cutoff: float, wanted: Sequence[str]) -> TicketStats:
    one = read_counts(row, 1)
    at = 1 + len(_count_names())
    for i, target in enumerate(SLA_TARGETS):  # running clocks past their deadline by now
        one.sla[target][1] += _before(row[at + i], cutoff)
    at += len(SLA_TARGETS)
    for i, name in enumerate(wanted):
        one.durations[name] = distribution(row[at + i])
    return one


def _before(packed: bytes | None, cutoff: float) -> int:
    """How many of the packed due instants are before ``cutoff``: clocks breached by now."""
    if not packed:
        return 0
    due = np.frombuffer(packed, dtype=">f8").astype(np.float64)
    return int(np.count_nonzero(due < cutoff))


def distribution(packed: bytes | None) -> Distribution:
    """n, median and p90 of packed values, as ``percentile_cont`` interpolates them: only the
    ranks :func:`ticketing.reports.aggregates.percentile` reads are put in place
    (``numpy.partition``), the rest is left unsorted."""
    if not packed:
        return Distribution(0, None, None)
    values = np.frombuffer(packed, dtype=">f8").astype(np.float64)
    n = len(values)
    ranks = {r for f in (0.5, 0.9) for r in (int(f * (n - 1)), min(int(f * (n - 1)) + 1, n - 1))}
    chosen = memoryview(np.partition(values, sorted(ranks)))  # a sequence of Python floats
    return Distribution(n, percentile(chosen, 0.5), percentile(chosen, 0.9))
