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
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import (
    Integer, LargeBinary, and_, case, cast, func, literal, literal_column, null, or_, select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.clock import aware
from ticketing.core.models import ReplyWait, ReportCell, ReportDay, ReportMark, TicketFact
# cells are only true while every fact change marks its day: loading this turns that on too
from ticketing.desk import facts as _facts  # noqa: F401
from ticketing.reports.aggregates import SLA_TARGETS, Distribution, TicketStats
from ticketing.reports.durations import DURATIONS, WAITS, in_postgres, wait_bounds
from ticketing.reports.scope import Filters, Period
from ticketing.reports.tallies import count_conditions, sla_columns

COUNTS = ("tickets", "escalated", "solved", "reopened", "handed_off", "unanswered")
VALUES = (*DURATIONS, *WAITS)  # packed columns, named as the durations
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
    wanted = [name for name in VALUES if name in set(durations)]
    cells = period_cells(session, period, wanted).subquery("cells")
    key = _group_key(cells, group)
    columns = [key.label("k"), *(func.sum(cells.c[name]) for name in _count_names()),
               *(_joined(cells.c[f"sla_{t}_pending"]) for t in SLA_TARGETS),
               *(_joined(cells.c[name]) for name in wanted)]
    stmt = select(*columns).where(*filters.where(cells.c.owner_id, cells.c.team_id))
    if group != "all":
        stmt = stmt.group_by(key)
    cutoff = aware(now).timestamp()
    with _binary_results(session):
        rows = session.execute(stmt).all()
    return {row[0]: _stats(row, cutoff, wanted) for row in rows}


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
def period_cells(session: Session, period: Period, wanted: Collection[str]) -> Any:
    """The period's cells: stored ones for its built, unchanged days, the facts' for the rest
    (one ``UNION ALL``; which is which is read first, so a day is never counted twice), with
    the ``wanted`` values (the others NULL: neither read nor packed)."""
    days = [d.isoformat() for d in period.days()]
    live = sorted(changed_days(session, days))
    table = ReportCell.__table__.c
    stored = _named(*(table[n] if n not in VALUES or n in wanted else _NONE
                      for n in stored_names())).where(ReportCell.day >= days[0],
                                                      ReportCell.day <= days[-1])
    if live:
        stored = stored.where(ReportCell.day.not_in(live))
        return union_all(stored, *fact_rows(_day_windows(live, period), wanted))
    return stored


def changed_days(session: Session, days: Sequence[str]) -> set[str]:
    """The days among ``days`` whose cells are missing or out of date."""
    first, last = days[0], days[-1]
    built = set(session.scalars(select(ReportDay.day).where(ReportDay.day >= first,
                                                           ReportDay.day <= last)))
    marked = set(session.scalars(select(ReportMark.day).distinct()
                                 .where(ReportMark.day >= first, ReportMark.day <= last)))
    return {d for d in days if d not in built or d in marked}


def cells_of_facts(window: Sequence[ColumnElement[bool]]) -> Any:
    """The cells of the tickets in ``window``, worked out from the facts and grouped as
    stored (what a build writes)."""
    rows = union_all(*fact_rows(window)).subquery("facts")
    key = [rows.c.day, rows.c.owner_id, rows.c.team_id]
    names = stored_names()[3:]
    return select(*key, *(func.sum(rows.c[n]) if n in _count_names() else _joined(rows.c[n])
                          for n in names)).group_by(*key)


def fact_rows(window: Sequence[ColumnElement[bool]],
              wanted: Collection[str] = VALUES) -> list[Any]:
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
    facts = _named(*key, *one, *(packed(n, c) for n, c in DURATIONS.items()),
                   *(_NONE for _ in WAITS)).where(*window)
    if not any(name in wanted for name in WAITS):
        return [facts]
    zeros: list[Any] = [literal(0, Integer)] * len(COUNTS)
    for _ in SLA_TARGETS:
        zeros += [literal(0, Integer), literal(0, Integer), _NONE]
    waits = (_named(*key, *zeros, *(_NONE for _ in DURATIONS),
                    *(packed(n, c) for n, c in WAITS.items()))
             .select_from(TicketFact)
             .join(ReplyWait, ReplyWait.ticket_id == TicketFact.ticket_id)
             .where(*window, ReplyWait.seq > 0, ReplyWait.seconds.is_not(None),
                    *wait_bounds(list(window))))
    return [facts, waits]


def _named(*columns: Any) -> Any:
    return select(*(c.label(name) for c, name in zip(columns, stored_names(), strict=True)))


def _day_windows(days: Sequence[str], period: Period) -> list[ColumnElement[bool]]:
    """The facts of ``days`` (local days of ``period``'s zone): runs of consecutive days as
    ranges of ``created_at``, which its index answers."""
    runs: list[list[date]] = []
    for text in days:
        day = date.fromisoformat(text)
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    spans = [Period.of_days(first, last, period.zone) for first, last in runs]
    return [or_(*(and_(TicketFact.created_at >= s.since, TicketFact.created_at < s.until)
                  for s in spans))]


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
    return [*names, *VALUES]


def _joined(column: Any) -> Any:
    return func.string_agg(column, _EMPTY)


# --- from rows to figures ----------------------------------------------------------------------
def _stats(row: Sequence[Any], cutoff: float, wanted: list[str]) -> TicketStats:
    one = TicketStats()
    counts = [int(v or 0) for v in row[1:1 + len(_count_names())]]
    (one.tickets, one.escalated, one.solved, one.reopened, one.handed_off,
     one.unanswered) = counts[:len(COUNTS)]
    at = 1 + len(counts)
    for i, target in enumerate(SLA_TARGETS):
        met, breached = counts[len(COUNTS) + 2 * i: len(COUNTS) + 2 * i + 2]
        one.sla[target] = [met, breached + _before(row[at + i], cutoff)]
    at += len(SLA_TARGETS)
    for i, name in enumerate(wanted):
        one.durations[name] = distribution(row[at + i])
    return one


def _before(packed: bytes | None, cutoff: float) -> int:
    """How many of the packed due instants are before ``cutoff``: clocks breached by now."""
    if not packed:
        return 0
    return int(np.count_nonzero(np.frombuffer(packed, dtype=">f8").astype(np.float64) < cutoff))


def distribution(packed: bytes | None) -> Distribution:
    """n, median and p90 of packed values, as ``percentile_cont`` interpolates them
    (:func:`ticketing.reports.aggregates.percentile`), from order statistics alone."""
    if not packed:
        return Distribution(0, None, None)
    values = np.frombuffer(packed, dtype=">f8").astype(np.float64)
    n = len(values)
    positions = {f: f * (n - 1) for f in (0.5, 0.9)}
    ranks = sorted({r for p in positions.values() for r in (int(p), min(int(p) + 1, n - 1))})
    chosen = np.partition(values, ranks)

    def at(fraction: float) -> float:
        position = positions[fraction]
        low = int(position)
        high = min(low + 1, n - 1)
        return float(chosen[low] + (chosen[high] - chosen[low]) * (position - low))

    return Distribution(n, at(0.5), at(0.9))
