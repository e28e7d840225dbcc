"""The managers' dashboard as the page shows it: figures with their sample sizes and the span
before, charts in the page's language, tables by one dimension, and the link behind each.

Everything is read through :mod:`ticketing.reports.metrics` (one definition per figure) and
every link goes to :mod:`ticketing.reports.drill` with the same period and filters, so the
list behind a number has exactly that many tickets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.models import Agent, Category, Channel, Priority, Segment, Team
from ticketing.reports import metrics
from ticketing.reports.aggregates import SLA_TARGETS, CsatStats, TicketStats
from ticketing.reports.scope import Period
from ticketing.shop.refunds.stats import refund_reason_stats
from ticketing.web import texts
from ticketing.web.queries.report_question import FILTER_PARAMS, Question
from ticketing.web.texts import UI, ui

TABLE_DIMENSIONS = ("agent", "team", "category", "channel", "tier", "segment", "priority")
# the durations the page shows: every median is a sort of the period's values
SUMMARY_DURATIONS = ("first_response", "next_response", "resolution_first", "resolution_last")
ROW_DURATIONS = ("first_response", "resolution_first")  # table rows, trend rows and charts


def span(seconds: float | None, language: str) -> str:
    """A duration as people read it; ``—`` for none, ``<1m`` under a minute."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return "<1" + ("分钟" if language == "zh" else "m")
    return texts.span(seconds, language)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Figure:
    """One headline number: its value, sample, the span before, and where it drills."""

    key: str
    label: str
    value: str
    n: int | None
    before: str
    change: str  # "up" | "down" | "same" | ""
    better: str  # "up" when a rise is good, "down" when a fall is, "" when neutral
    link: str | None


def _change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return ""
    return "same" if abs(now - before) < 1e-9 else ("up" if now > before else "down")


def figures(summary: metrics.Summary, question: Question, language: str) -> list[Figure]:
    t, tb, c, cb = summary.tickets, summary.tickets_before, summary.csat, summary.csat_before
    chats, chats_before = summary.conversations, summary.conversations_before

    def label(key: str) -> str:
        return metrics.METRICS[key].label.get(language)

    def rate(key: str, now: float | None, before: float | None, n: int, better: str,
             link: str | None) -> Figure:
        return Figure(key, label(key), pct(now), n, pct(before), _change(now, before), better,
                      link)

    def time(key: str, name: str, stat: str, better_link: str | None) -> Figure:
        now, before = t.duration(name), tb.duration(name)
        a, b = getattr(now, stat), getattr(before, stat)
        title = label(key) + (" P90" if stat == "p90" else ("（中位数）" if language == "zh"
                                                            else " (median)"))
        return Figure(f"{key}_{stat}", title, span(a, language), now.n, span(b, language),
                      _change(a, b), "down", better_link)

    drill = question.drill
    found = [
        rate("csat", c.csat_pct, cb.csat_pct, c.responses, "up", drill("csat_responses")),
        Figure("csat_average", label("csat_average"), number(c.average), c.responses,
               number(cb.average), _change(c.average, cb.average), "up", drill("csat_responses")),
        rate("response_rate", c.response_rate_pct, cb.response_rate_pct, c.sent, "up",
             drill("surveys")),
        time("first_response", "first_response", "median", drill("answered")),
        time("first_response", "first_response", "p90", drill("answered")),
        time("next_response", "next_response", "median", None),
        time("resolution_first", "resolution_first", "median", drill("solved")),
        time("resolution_last", "resolution_last", "median", drill("solved")),
    ]
    for target in SLA_TARGETS:
        key = f"sla_{target}"
        found.append(rate(key, t.sla_pct(target), tb.sla_pct(target), t.sla_n(target), "up",
                          drill(f"sla_{target}_late")))
    found += [
        Figure("breached_now", label("breached_now"), str(summary.breached_now), None, "", "",
               "down", drill("breached_now")),
        rate("containment", chats.containment_pct, chats_before.containment_pct,
             chats.conversations, "up", None),
        rate("handoff", chats.handoff_pct, chats_before.handoff_pct, chats.conversations, "",
             drill("handed_off")),
        rate("reopen", t.reopen_pct, tb.reopen_pct, t.solved, "down", drill("reopened")),
        rate("escalation", t.escalation_pct, tb.escalation_pct, t.tickets, "",
             drill("escalated")),
        Figure("tickets", label("tickets"), str(t.tickets), None, str(tb.tickets),
               _change(t.tickets, tb.tickets), "", drill("tickets")),
    ]
    return found


# --- names of things --------------------------------------------------------------------------
class Names:
    """Human names for dimension keys in the page's language (agents and teams from the DB)."""

    def __init__(self, session: Session, language: str) -> None:
        self.language = language
        self.agents = {i: n for i, n in session.execute(select(Agent.id, Agent.display_name))}
        self.teams = {i: (zh if language == "zh" else en) for i, zh, en in session.execute(
            select(Team.id, Team.name_zh, Team.name_en))}

    def of(self, dimension: str, key: Any) -> str:
        if key is None:
            return ui("report.unassigned", self.language)
        if dimension == "agent":
            return self.agents.get(int(key), str(key))
        if dimension == "team":
            return self.teams.get(int(key), str(key))
        prefix = {"category": "category", "channel": "channel", "tier": "tier",
                  "segment": "ticket.segment", "priority": "priority"}[dimension]
        found = UI.get(f"{prefix}.{key}")
        return found.get(self.language) if found else str(key)

    def options(self, dimension: str) -> list[tuple[str, str]]:
        """The choices of a filter, as (value, label)."""
        values: list[Any] = {
            "agent": sorted(self.agents, key=lambda i: self.agents[i]),
            "team": sorted(self.teams, key=lambda i: self.teams[i]),
            "tier": [1, 2, 3],
            "category": [c.value for c in Category],
            "channel": [c.value for c in Channel],
            "segment": [s.value for s in Segment],
            "priority": [p.value for p in Priority],
        }[dimension]
        return [(str(v), self.of(dimension, v)) for v in values]


# --- tables -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    text: str
    link: str | None = None


@dataclass
class Row:
    key: Any
    label: str
    cells: list[Cell] = field(default_factory=list)


TABLE_COLUMNS = ("tickets", "first_response", "sla_first_response", "resolution_first",
                 "sla_resolution", "reopen", "escalation", "csat", "csat_average")


def row_cells(question: Question, stats: TicketStats, csat: CsatStats, language: str, *,
              period: Period | None = None, narrow: tuple[str, Any] | None = None) -> list[Cell]:
    """A table row's cells in :data:`TABLE_COLUMNS` order, each number linked to its tickets."""
    drill = question.drills(period=period, narrow=narrow)

    first = stats.duration("first_response")
    solved = stats.duration("resolution_first")
    return [
        Cell(str(stats.tickets), drill("tickets") if stats.tickets else None),
        Cell(f"{span(first.median, language)} (n={first.n})", drill("answered") if first.n else None),
        Cell(f"{pct(stats.sla_pct('first_response'))} (n={stats.sla_n('first_response')})",
             drill("sla_first_response_late") if stats.sla["first_response"][1] else None),
        Cell(f"{span(solved.median, language)} (n={solved.n})", drill("solved") if solved.n else None),
        Cell(f"{pct(stats.sla_pct('resolution'))} (n={stats.sla_n('resolution')})",
             drill("sla_resolution_late") if stats.sla["resolution"][1] else None),
        Cell(f"{pct(stats.reopen_pct)} (n={stats.solved})",
             drill("reopened") if stats.reopened else None),
        Cell(f"{pct(stats.escalation_pct)} (n={stats.tickets})",
             drill("escalated") if stats.escalated else None),
        Cell(f"{pct(csat.csat_pct)} (n={csat.responses})",
             drill("csat_responses") if csat.responses else None),
        Cell(number(csat.average), drill("csat_low") if csat.distribution[1] + csat.distribution[2]
             else None),
    ]


def table_data(session: Session, question: Question, *, now: datetime
               ) -> tuple[dict[Any, TicketStats], dict[Any, CsatStats]]:
    return metrics.table(session, question.period, question.filters, question.dimension,
                         now=now, durations=ROW_DURATIONS)


def table_rows(session: Session | None, question: Question, names: Names, language: str, *,
               now: datetime, data: tuple[dict[Any, TicketStats], dict[Any, CsatStats]]
               | None = None) -> list[Row]:
    stats, csat = data if data is not None else table_data(session, question, now=now)
    keys = sorted(set(stats) | set(csat), key=lambda k: (k is not None, names.of(
        question.dimension, k)))
    return [Row(key, names.of(question.dimension, key),
                row_cells(question, stats.get(key, TicketStats()), csat.get(key, CsatStats()),
                          language, narrow=(question.dimension, key)))
            for key in keys]


def trend_rows(question: Question, stats: dict[str, TicketStats], csat: dict[str, CsatStats],
               language: str) -> list[Row]:
    rows = []
    for bucket in metrics.buckets(question.period, question.grain):
        period = _bucket_period(bucket, question.period)
        rows.append(Row(bucket, bucket, row_cells(question, stats.get(bucket, TicketStats()),
                                                  csat.get(bucket, CsatStats()), language,
                                                  period=period)))
    return rows


def _bucket_period(bucket: str, within: Period) -> Period:
    """The local days of one trend bucket (a day, or the part of an ISO week in the period)."""
    if "W" in bucket:
        year, week = bucket.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
        sunday = date.fromisocalendar(int(year), int(week), 7)
        return Period.of_days(max(monday, within.first), min(sunday, within.last), within.zone)
    day = date.fromisoformat(bucket)
    return Period.of_days(day, day, within.zone)


# --- charts -----------------------------------------------------------------------------------
def trend_chart(question: Question, stats: dict[str, TicketStats], csat: dict[str, CsatStats],
                language: str) -> dict[str, Any]:
    """Tickets per day or week (bars) and CSAT % (line, right axis); each links to its list."""
    buckets = metrics.buckets(question.period, question.grain)
    periods = [_bucket_period(b, question.period) for b in buckets]
    return {
        "title": ui("report.chart.trend", language),
        "x": buckets,
        "series": [
            {"name": ui("report.chart.tickets", language), "kind": "bar", "axis": 0,
             "values": [stats.get(b, TicketStats()).tickets for b in buckets],
             "links": [question.drill("tickets", period=p) for p in periods]},
            {"name": "CSAT %", "kind": "line", "axis": 1,
             "values": [_round(csat.get(b, CsatStats()).csat_pct) for b in buckets],
             "links": [question.drill("csat_responses", period=p) for p in periods]},
        ],
    }


def response_chart(question: Question, stats: dict[str, TicketStats],
                   language: str) -> dict[str, Any]:
    """Median first response and resolution per bucket, in hours."""
    buckets = metrics.buckets(question.period, question.grain)
    periods = [_bucket_period(b, question.period) for b in buckets]

    def hours(name: str, stat: str) -> list[float | None]:
        values = [getattr(stats.get(b, TicketStats()).duration(name), stat) for b in buckets]
        return [None if v is None else round(v / 3600, 2) for v in values]

    return {
        "title": ui("report.chart.times", language), "x": buckets, "unit": "h",
        "series": [
            {"name": ui("report.chart.first_response", language), "kind": "line",
             "values": hours("first_response", "median"),
             "links": [question.drill("answered", period=p) for p in periods]},
            {"name": ui("report.chart.first_response_p90", language), "kind": "line",
             "values": hours("first_response", "p90"),
             "links": [question.drill("answered", period=p) for p in periods]},
            {"name": ui("report.chart.resolution", language), "kind": "line",
             "values": hours("resolution_first", "median"),
             "links": [question.drill("solved", period=p) for p in periods]},
        ],
    }


def scores_chart(question: Question, csat: CsatStats, language: str) -> dict[str, Any]:
    scores = list(range(1, 6))
    return {
        "title": ui("report.chart.scores", language),
        "x": [ui("report.chart.score", language).format(n=s) for s in scores],
        "series": [{"name": ui("report.chart.responses", language), "kind": "bar",
                    "values": [csat.distribution[s] for s in scores],
                    "links": [question.drill(f"csat_score_{s}") for s in scores]}],
    }


def sla_chart(question: Question, stats: TicketStats, language: str) -> dict[str, Any]:
    targets = list(SLA_TARGETS)
    return {
        "title": ui("report.chart.sla", language), "unit": "%", "y_max": 100,
        "x": [metrics.METRICS[f"sla_{t}"].label.get(language) for t in targets],
        "series": [{"name": ui("report.chart.met", language), "kind": "bar",
                    "values": [_round(stats.sla_pct(t)) for t in targets],
                    "links": [question.drill(f"sla_{t}_late") for t in targets]}],
    }


def reasons_chart(question: Question, stats: dict[Any, TicketStats], names: Names,
                  language: str) -> dict[str, Any]:
    """Contact reasons: tickets per category, most frequent first."""
    keys = sorted(stats, key=lambda k: -stats[k].tickets)
    return {
        "title": ui("report.chart.reasons", language),
        "x": [names.of("category", k) for k in keys],
        "series": [{"name": ui("report.chart.tickets", language), "kind": "bar",
                    "values": [stats[k].tickets for k in keys],
                    "links": [question.drill("tickets", narrow=("category", k)) for k in keys]}],
    }


@dataclass(frozen=True)
class RefundReason:
    label: str
    requests: int
    refunded: str
    link: str


def refund_reasons(session: Session, question: Question, language: str) -> list[RefundReason]:
    """High-frequency refund reasons in the period (rules §REF-6), each linked to its list."""
    found = refund_reason_stats(session, since=question.period.since,
                                until=question.period.until)
    return [RefundReason(r.label.get(language), r.requests, f"{r.refunded_cents / 100:,.2f}",
                         question.link("/reports/refunds", reason=r.reason)) for r in found]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
