"""Readying a desk process before it takes its first request.

A new process pays once for what every later request reuses: database connections (on
PostgreSQL each new server process also loads the catalog entries of the tables it plans
against), SQLAlchemy's compiled statements and Jinja's compiled templates. Without this the
first manager to open the reports after a deploy waited for all of it: the dashboard asks its
query groups at once, each on a connection of its own, so it opened several at a time.
``bench/reports.py`` measures "cold" requests in processes started this way.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier
from zoneinfo import ZoneInfo

from ticketing.reports import metrics
from ticketing.reports.scope import Filters, Period
from ticketing.web.deps import Desk
from ticketing.web.queries.dashboard import ROW_DURATIONS, SUMMARY_DURATIONS

log = logging.getLogger(__name__)
CONNECTIONS = 5  # the dashboard's four query groups and the page's own session


def warm_up(desk: Desk, *, connections: int = CONNECTIONS) -> None:
    """Compile every template, then open ``connections`` pooled connections at once and ask
    each the reports' statements over an empty range (tomorrow: no rows, full plans)."""
    for name in desk.templates.env.list_templates(extensions=("html",)):
        desk.templates.env.get_template(name)
    engine = desk.session_factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        return  # SQLite: one file, nothing to connect to or plan remotely
    zone = ZoneInfo(desk.settings.timezone)
    now = desk.clock()
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    period = Period.of_days(tomorrow, tomorrow, zone)
    together = Barrier(connections)  # held at once, so the pool opens that many

    def ask(_: int) -> None:
        with desk.session_factory() as session:
            try:
                metrics.use_report_memory(session)
                together.wait(timeout=30)
                metrics.summary(session, period, Filters(), now=now, durations=SUMMARY_DURATIONS)
                metrics.trend(session, period, Filters(), "day", now=now,
                              durations=ROW_DURATIONS)
                metrics.table(session, period, Filters(), "agent", now=now,
                              durations=ROW_DURATIONS)
                metrics.counts(session, period, Filters(), "category", now=now)
            finally:
                session.rollback()

    try:
        with ThreadPoolExecutor(max_workers=connections) as pool:
            list(pool.map(ask, range(connections)))
    except Exception:  # a slow or absent database only makes the first request slower
        log.warning("desk warm-up did not finish", exc_info=True)
