"""The reports' CSV exports: one row per ticket behind any figure, and every table.

UTF-8 with a byte-order mark, so spreadsheet programs read Chinese correctly; never a phone
number or an address (the rows come from ``reports.drill``, which has none); text a spreadsheet
would run as a formula (a customer's comment ``=HYPERLINK(...)``) starts with ``'``. Who may
export, and the question in the query string, are the dashboard's (``routes/reports.py``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ticketing.reports import drill, metrics
from ticketing.reports.aggregates import SLA_TARGETS
from ticketing.shop.refunds.rules import REASON_LABELS, RefundReason
from ticketing.web.api import errors
from ticketing.web.deps import desk_of
from ticketing.web.queries import dashboard
from ticketing.web.queries.report_question import Question
from ticketing.web.routes.reports import Reader, question_of, visible_lines
from ticketing.web.texts import ui

router = APIRouter()


TICKET_COLUMNS = ("number", "customer_segment", "channel", "category", "priority", "tier",
                  "owner", "team", "created", "first_response", "first_response_minutes",
                  "solved", "sla_first_response", "sla_next_response", "sla_resolution", "csat",
                  "comment", "refund_reason")


# a cell starting with one of these is a formula to a spreadsheet (CSV injection); the
# full-width signs too, as a Chinese input method types them and some spreadsheets fold them
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _cell(value: Any) -> Any:
    """A value as written: text that would start a formula gets a leading ``'`` (shown as
    text); numbers stay numbers, negative ones included."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(rows: Iterator[list[Any]], filename: str) -> StreamingResponse:
    """Every export's one way out: the BOM, then each cell through :func:`_cell`."""
    def lines() -> Iterator[str]:
        yield "\ufeff"
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/reports/export/tickets.csv", tags=["reports"], responses=errors(403, 422),
            response_class=StreamingResponse)
def export_tickets(request: Request, who: Reader) -> StreamingResponse:
    """One row per ticket behind ``metric`` (default: every ticket of the period)."""
    desk = desk_of(request)
    question = question_of(request, desk)
    metric = request.query_params.get("metric") or "tickets"
    drill.drill_of(metric)
    now, zone, language = desk.clock(), desk.settings.timezone, who.language

    def rows() -> Iterator[list[Any]]:
        yield list(TICKET_COLUMNS)
        with desk.unit_of_work() as session:
            for line in drill.all_tickets(session, metric, question.period, question.filters,
                                          now=now, visible=visible_lines(session, who)):
                yield _ticket_row(line, now=now, zone=zone, language=language)

    return _csv(rows(), f"kefu-tickets-{question.period.first}-{question.period.last}.csv")


def _ticket_row(line: drill.TicketLine, *, now: datetime, zone: str, language: str) -> list[Any]:
    tz = ZoneInfo(zone)

    def moment(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    reason = None
    if line.refund_reason:
        try:
            reason = REASON_LABELS[RefundReason(line.refund_reason)].get(language)
        except ValueError:
            reason = line.refund_reason
    return [line.number, line.segment, line.channel, line.category, line.priority, line.tier,
            line.owner, line.team_zh if language == "zh" else line.team_en,
            moment(line.created_at), moment(line.first_response_at),
            None if line.first_response_s is None else round(line.first_response_s / 60, 1),
            moment(line.last_solved_at),
            *(line.sla_outcome(t, now) for t in SLA_TARGETS),
            line.csat_score, line.comment, reason]


@router.get("/reports/export/table.csv", tags=["reports"], responses=errors(403, 422),
            response_class=StreamingResponse)
def export_table(request: Request, who: Reader) -> StreamingResponse:
    """The dashboard's table by ``dimension`` (agent, team, category, channel, tier...)."""
    desk = desk_of(request)
    question = question_of(request, desk)
    with desk.unit_of_work() as session:
        names = dashboard.Names(session, who.language)
        rows = dashboard.table_rows(session, question, names, who.language, now=desk.clock())
    return _table_csv(rows, question.dimension, question, who.language)


@router.get("/reports/export/trend.csv", tags=["reports"], responses=errors(403, 422),
            response_class=StreamingResponse)
def export_trend(request: Request, who: Reader) -> StreamingResponse:
    """The same columns per day or ISO week (``grain``)."""
    desk = desk_of(request)
    question = question_of(request, desk)
    with desk.unit_of_work() as session:
        trend, trend_csat = metrics.trend(session, question.period, question.filters,
                                          question.grain, now=desk.clock(),
                                          durations=dashboard.ROW_DURATIONS)
    rows = dashboard.trend_rows(question, trend, trend_csat, who.language)
    return _table_csv(rows, question.grain, question, who.language)


@router.get("/reports/export/refund_reasons.csv", tags=["reports"], responses=errors(403, 422),
            response_class=StreamingResponse)
def export_refund_reasons(request: Request, who: Reader) -> StreamingResponse:
    """Refund requests and money refunded per reason in the period (rules §REF-6)."""
    desk = desk_of(request)
    question = question_of(request, desk)
    with desk.unit_of_work() as session:
        reasons = dashboard.refund_reasons(session, question, who.language)
    header = [ui(k, who.language) for k in ("report.reason", "report.refund_requests",
                                             "report.refunded")]
    body = [[r.label, r.requests, r.refunded] for r in reasons]
    return _csv(iter([header, *body]),
                f"kefu-refund-reasons-{question.period.first}-{question.period.last}.csv")


def _table_csv(rows: list[dashboard.Row], by: str, question: Question,
               language: str) -> StreamingResponse:
    header = [ui(f"report.dimension.{by}", language)] + [
        ui(f"report.column.{c}", language) for c in dashboard.TABLE_COLUMNS]
    body = [[row.label] + [cell.text for cell in row.cells] for row in rows]
    return _csv(iter([header, *body]),
                f"kefu-{by}-{question.period.first}-{question.period.last}.csv")
