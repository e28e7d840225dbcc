"""A desk process readied before its first request (ticketing.web.warmup)."""

from __future__ import annotations

from ticketing.web.warmup import warm_up


def test_templates_are_compiled_before_the_first_request(app) -> None:
    desk = app.state.desk
    warm_up(desk, connections=2)
    cached = {template.name for template in desk.templates.env.cache.values()}
    assert {"reports.html", "report_tickets.html", "error.html"} <= cached


def test_postgresql_connections_are_opened_and_ready(app, pg_engine) -> None:
    """Each of the connections has asked the reports' statements (over an empty range, so
    nothing is read), and they wait in the pool for the first dashboard's query groups."""
    pg_engine.dispose()
    warm_up(app.state.desk, connections=3)
    assert pg_engine.pool.checkedin() >= 3
