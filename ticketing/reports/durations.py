"""Medians and 90th percentiles of the tickets' durations (docs/metrics.md).

Percentiles interpolate linearly between ranks: PostgreSQL's ``percentile_cont`` computes
them there; SQLite gets the rows' values and the same formula in Python
(:func:`ticketing.reports.aggregates.distribution`). Durations are read from the ticket facts,
next responses from the reply waits of the same tickets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Select, func, null, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.models import ReplyWait, TicketFact
from ticketing.reports.aggregates import Distribution, distribution
from ticketing.reports.scope import Filters

DURATIONS = {  # name -> fact column (seconds)
    "first_response": TicketFact.first_response_s,
    "first_response_bh": TicketFact.first_response_bh_s,
    "resolution_first": TicketFact.resolution_first_s,
    "resolution_first_bh": TicketFact.resolution_first_bh_s,
    "resolution_last": TicketFact.resolution_last_s,
    "resolution_last_bh": TicketFact.resolution_last_bh_s,
}
WAITS = {  # next responses: name -> reply wait column (seconds)
    "next_response": ReplyWait.seconds,
    "next_response_bh": ReplyWait.business_seconds,
}
NEXT_RESPONSE = tuple(WAITS)
ALL_DURATIONS = (*DURATIONS, *NEXT_RESPONSE)
Rekey = Callable[[Any], Any] | None
Bounds = tuple[int, int]  # the lowest and highest ticket id of a window's tickets


def in_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def fact_columns(wanted: Iterable[str]) -> dict[str, Any]:
    """The fact columns of the durations in ``wanted`` (next responses are not facts)."""
    wanted = set(wanted)
    return {name: column for name, column in DURATIONS.items() if name in wanted}


def wait_columns(wanted: Iterable[str]) -> dict[str, Any]:
    wanted = set(wanted)
    return {name: column for name, column in WAITS.items() if name in wanted}


def percentile_columns(columns: dict[str, Any]) -> list[Any]:
    """PostgreSQL: n, median and p90 of each column (the two percentiles share one sort)."""
    found: list[Any] = []
    for column in columns.values():
        found += [func.count(column), func.percentile_cont(0.5).within_group(column),
                  func.percentile_cont(0.9).within_group(column)]
    return found


def read_percentiles(row: Any, start: int, names: Iterable[str]) -> dict[str, Distribution]:
    """The distributions that :func:`percentile_columns` put in ``row`` from ``start`` on."""
    found = {}
    for i, name in enumerate(names):
        n, median, p90 = row[start + 3 * i: start + 3 * i + 3]
        found[name] = Distribution(n or 0, _float(median), _float(p90))
    return found


def window_durations(session: Session, window: Iterable[ColumnElement[bool]], filters: Filters,
                     durations: Iterable[str]) -> dict[str, Distribution]:
    """The ``durations`` named over all the tickets in ``window`` (one group)."""
    where = [*window, *filters.tickets()]
    return grouped_durations(session, None, where, set(durations), None).get(None, {})


def grouped_durations(session: Session, key: Any, where: list[Any], wanted: set[str],
                      rekey: Rekey, *, bounds: Bounds | None = None
                      ) -> dict[Any, dict[str, Distribution]]:
    """The durations in ``wanted`` of the tickets in ``where``, per ``key`` (None: one group).
    ``bounds``: the tickets' lowest and highest id when the caller already knows them."""
    columns = fact_columns(wanted)
    found = _distributions(session, key, where, columns, rekey) if columns else {}
    for group, values in wait_durations(session, key, where, wanted, rekey,
                                        bounds=bounds).items():
        found.setdefault(group, {}).update(values)
    return found


def wait_durations(session: Session, key: Any, where: list[Any], wanted: Iterable[str],
                   rekey: Rekey, *, bounds: Bounds | None = None
                   ) -> dict[Any, dict[str, Distribution]]:
    """Next-response durations: the answered next waits of the tickets in ``where``."""
    waited = wait_columns(wanted)
    if not waited:
        return {}
    ids = wait_bounds(where) if bounds is None else id_range(bounds)
    return _distributions(session, key, [*where, ReplyWait.seq > 0,
                                         ReplyWait.seconds.is_not(None), *ids],
                          waited, rekey, join=True)


def id_range(bounds: Bounds) -> list[ColumnElement[bool]]:
    """Known bounds on both sides of the tickets-to-waits join: redundant (the join and the
    window imply them) but they let PostgreSQL walk the facts' primary key and the waits'
    index side by side in ticket order (a merge join: 38 -> 27 ms of CPU for a 30-day
    window's 47,000 next waits at a million tickets) instead of hashing one side."""
    low, high = bounds
    return [TicketFact.ticket_id >= low, TicketFact.ticket_id <= high,
            ReplyWait.ticket_id >= low, ReplyWait.ticket_id <= high]


def wait_bounds(where: list[Any]) -> list[ColumnElement[bool]]:
    """The lowest and highest ticket id among the tickets in ``where``, as bounds on the reply
    waits' ticket ids: redundant with the join (always true of its rows), but they let the
    database read only that stretch of the waits' index instead of every answered wait ever
    (tickets are numbered as they come, so a month's tickets are a narrow id range: at a
    million tickets the 30-day next-response percentiles went from ~480 to ~190 ms).
    ``ticket_id + 0``: with a bare column PostgreSQL answers min/max by walking the primary
    key from one end and filtering on the window, which reads most of the table. Callers that
    counted the window already pass its bounds instead (one scan of the window fewer)."""
    bounds = (select(func.min(TicketFact.ticket_id + 0).label("low"),
                     func.max(TicketFact.ticket_id + 0).label("high"))
              .where(*where).correlate(None).cte("wait_bounds"))  # one scan for both ends
    return [ReplyWait.ticket_id >= select(bounds.c.low).scalar_subquery(),
            ReplyWait.ticket_id <= select(bounds.c.high).scalar_subquery()]


def _distributions(session: Session, key: Any, where: list[Any], columns: dict[str, Any],
                   rekey: Rekey, *, join: bool = False) -> dict[Any, dict[str, Distribution]]:
    """Median and p90 of each column per group (``key`` None: one group, no GROUP BY): in
    SQL on PostgreSQL, in Python elsewhere."""
    k = (null() if key is None else key).label("k")
    base: Select[Any]
    found: dict[Any, dict[str, Distribution]] = defaultdict(dict)
    if in_postgres(session) and rekey is None:
        base = select(k, *percentile_columns(columns))
        if join:
            base = base.select_from(TicketFact).join(ReplyWait,
                                                    ReplyWait.ticket_id == TicketFact.ticket_id)
        stmt = base.where(*where)
        for row in session.execute(stmt if key is None else stmt.group_by(k)):
            found[row[0]].update(read_percentiles(row, 1, columns))
        return dict(found)
    base = select(k, *columns.values())
    if join:
        base = base.select_from(TicketFact).join(ReplyWait,
                                                ReplyWait.ticket_id == TicketFact.ticket_id)
    values: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in session.execute(base.where(*where)):
        group = group_key(row[0], rekey)
        for name, value in zip(columns, row[1:]):
            if value is not None:
                values[group][name].append(float(value))
    for group, by_name in values.items():
        for name in columns:
            found[group][name] = distribution(by_name.get(name, []))
    return dict(found)


def group_key(value: Any, rekey: Rekey) -> Any:
    """A group's key as the reports use it: enums by value, days into weeks by ``rekey``."""
    value = getattr(value, "value", value)
    return rekey(value) if rekey is not None and value is not None else value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
