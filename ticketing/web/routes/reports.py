"""Managers' reports: the dashboard ``/reports``, the ticket list behind every number
``/reports/tickets``, refund requests ``/reports/refunds`` and the JSON summary (the CSV
exports are in ``routes/report_exports.py``).

Supervisors, managers and admins read them; agents get 403 whatever they ask. The question
(period in local days, filters, table dimension, trend grain) travels in the query string, so
every view is a link that can be shared, bookmarked and exported. Exports are UTF-8 with a
byte-order mark (spreadsheet programs then read Chinese correctly) and never hold a phone
number or an address.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import BaseModel
from sqlalchemy import select

from ticketing.core.errors import PermissionDenied, ValidationError
from ticketing.core.models import Category, Channel, Order, Priority, RefundRequest, Role, Segment
from ticketing.desk import access
from ticketing.reports import alerts, drill, metrics
from ticketing.reports.scope import Filters, Period
from ticketing.shop.refunds.rules import REASON_LABELS, RefundReason
from ticketing.web.api import errors
from ticketing.web.deps import Desk, Principal, desk_of, principal
from ticketing.web.queries import dashboard
from ticketing.web.queries.report_question import FILTER_PARAMS, Question

router = APIRouter()
# the dashboard's independent query groups run at once, each on its own pooled connection
_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="reports")


def _read(desk: Any, work: Any) -> Any:
    """``work(session)`` in a read-only transaction of its own (rolled back)."""
    with desk.session_factory() as session:
        try:
            metrics.use_report_memory(session)
            return work(session)
        finally:
            session.rollback()

READERS = (Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
DEFAULT_DAYS = 7
_ENUMS = {"categories": {c.value for c in Category}, "channels": {c.value for c in Channel},
          "segments": {s.value for s in Segment}, "priorities": {p.value for p in Priority}}


def reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Only supervisors, managers and admins read reports."""
    if who.role not in READERS:
        raise PermissionDenied("reports are for supervisors, managers and admins")
    return who


Reader = Annotated[Principal, Depends(reader)]


def visible_lines(session: Any, who: Principal) -> Any:
    """What a reader's ticket lists (drill-downs, the ticket CSV) may hold: every ticket for
    managers and admins; for a supervisor the tickets they may open at the desk (§SEC-5),
    so a list never shows another team's subjects and comments. The figures count all."""
    agent = who.agent(session)
    return None if access.reads_everything(agent) else access.visible_tickets(session, agent)


# --- the question in the query string -------------------------------------------------------
def question_of(request: Request, desk: Desk) -> Question:
    """Period (default: the last 7 local days), filters, dimension and grain; 422 if malformed."""
    query = request.query_params
    zone = ZoneInfo(desk.settings.timezone)
    today = desk.clock().astimezone(zone).date()
    since_text, until_text = query.get("since"), query.get("until")
    if since_text or until_text:
        last = _day(until_text, "until") if until_text else today
        first = _day(since_text, "since") if since_text else last - timedelta(days=DEFAULT_DAYS - 1)
        period = Period.of_days(first, last, zone)
    else:
        period = Period.last_days(DEFAULT_DAYS, today=today, zone=zone)
    values: dict[str, tuple[Any, ...]] = {}
    for param, name in FILTER_PARAMS:
        given = [v for v in query.getlist(param)]
        if not given:
            continue
        values[name] = tuple(_filter_value(name, v) for v in given)
    dimension = query.get("dimension") or "agent"
    if dimension not in dashboard.TABLE_DIMENSIONS:
        raise ValidationError(f"unknown dimension {dimension!r}", field="dimension")
    grain = query.get("grain") or ("week" if len(period.days()) > 62 else "day")
    if grain not in ("day", "week"):
        raise ValidationError("grain is day or week", field="grain")
    return Question(period, Filters(**values), dimension, grain)


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-03-02", field=field) from None


def _filter_value(name: str, text: str) -> Any:
    if text == "":
        return None  # "unassigned": tickets without an owner or team
    if name in ("agents", "teams", "tiers"):
        if not (text.isascii() and text.isdigit()) or len(text) > 9:  # "²" is a digit too
            raise ValidationError(f"{name} takes numbers", field=name)
        return int(text)
    if text not in _ENUMS[name]:
        raise ValidationError(f"unknown value {text!r} for {name}", field=name)
    return text


def _json_island(data: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` island, safe inside HTML."""
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


# --- pages -------------------------------------------------------------------------------------
@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request, who: Reader) -> Any:
    """The dashboard: headline figures against the span before, charts, a table by one
    dimension, contact and refund reasons, open alerts."""
    desk = desk_of(request)
    language = who.language
    question = question_of(request, desk)
    now = desk.clock()
    period, filters = question.period, question.filters
    # the summary's parts apart: its two spans' percentiles are the heaviest reads
    parts = metrics.summary_parts(period, filters, now=now, durations=dashboard.SUMMARY_DURATIONS)
    jobs = {
        **{f"summary.{name}": part for name, part in parts.items()},
        "trend": lambda s: metrics.trend(s, period, filters, question.grain, now=now,
                                         durations=dashboard.ROW_DURATIONS),
        "table": lambda s: dashboard.table_data(s, question, now=now),
        "reasons": lambda s: metrics.counts(s, period, filters, "category", now=now),
    }
    parallel = desk.settings.database_url.startswith("postgresql")  # SQLite: one writer lock
    running = {name: _READS.submit(_read, desk, work) for name, work in jobs.items()} \
        if parallel else {}
    with desk.unit_of_work() as session:
        names = dashboard.Names(session, language)
        done = {name: future.result() for name, future in running.items()} if parallel \
            else {name: work(session) for name, work in jobs.items()}
        summary = metrics.assemble_summary(period, {name: done[f"summary.{name}"]
                                                    for name in parts})
        (trend, trend_csat), by_category = done["trend"], done["reasons"]
        context = {
            "language": language, "who": who, "csrf_token": who.csrf_token, "q": question,
            "figures": dashboard.figures(summary, question, language),
            "summary": summary,
            "charts": {
                "trend": _json_island(dashboard.trend_chart(question, trend, trend_csat, language)),
                "times": _json_island(dashboard.response_chart(question, trend, language)),
                "scores": _json_island(dashboard.scores_chart(question, summary.csat, language)),
                "sla": _json_island(dashboard.sla_chart(question, summary.tickets, language)),
                "reasons": _json_island(dashboard.reasons_chart(question, by_category, names,
                                                                language)),
            },
            "rows": dashboard.table_rows(None, question, names, language, now=now,
                                         data=done["table"]),
            "trend_rows": dashboard.trend_rows(question, trend, trend_csat, language),
            "columns": dashboard.TABLE_COLUMNS,
            "refund_reasons": dashboard.refund_reasons(session, question, language),
            "alerts": _alerts(session, language),
            "options": {param: names.options(param) for param, _ in FILTER_PARAMS},
            "chosen": _chosen(question),
            "dimensions": dashboard.TABLE_DIMENSIONS,
        }
    return desk.templates.TemplateResponse(request, "reports.html", context)


def _chosen(question: Question) -> dict[str, set[str]]:
    return {param: {"" if v is None else str(v) for v in getattr(question.filters, name)}
            for param, name in FILTER_PARAMS}


def _alerts(session: Any, language: str) -> list[dict[str, str]]:
    """Open alerts, newest first, each with the link to what it is about."""
    return [{"text": alerts.describe(a, language), "link": alerts.alert_links(a),
             "kind": a.kind} for a in alerts.open_alerts(session, limit=20)]


@router.get("/reports/tickets", response_class=HTMLResponse, include_in_schema=False)
def drill_page(request: Request, who: Reader) -> Any:
    """The tickets behind one figure, 50 a page, newest first, with the export link."""
    desk = desk_of(request)
    question = question_of(request, desk)
    metric = request.query_params.get("metric") or "tickets"
    page = _page(request)
    now = desk.clock()
    with desk.unit_of_work() as session:
        lines, total = drill.tickets(session, metric, question.period, question.filters,
                                     now=now, page=page, visible=visible_lines(session, who))
        names = dashboard.Names(session, who.language)
    context = {
        "language": who.language, "who": who, "csrf_token": who.csrf_token, "q": question,
        "metric": metric, "drill": drill.drill_of(metric), "lines": lines, "total": total,
        "page": page, "pages": max(1, -(-total // drill.PAGE_SIZE)), "names": names,
        "now": now, "timezone": desk.settings.timezone, "span": dashboard.span,
        "filters": _filter_labels(question, names),
    }
    return desk.templates.TemplateResponse(request, "report_tickets.html", context)


def _page(request: Request) -> int:
    text = request.query_params.get("page") or "1"
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or not 1 <= int(text) <= 100_000:
        raise ValidationError("page must be a positive number", field="page")
    return int(text)


def _filter_labels(question: Question, names: dashboard.Names) -> list[str]:
    labels = []
    for param, name in FILTER_PARAMS:
        for value in getattr(question.filters, name):
            labels.append(names.of(param, value))
    return labels


@router.get("/reports/refunds", response_class=HTMLResponse, include_in_schema=False)
def refunds_page(request: Request, who: Reader) -> Any:
    """Refund requests in the period, by reason, product category, product or customer: what a
    refund alert or a refund reason links to."""
    desk = desk_of(request)
    question = question_of(request, desk)
    query = request.query_params
    with desk.unit_of_work() as session:
        rows = _refunds(session, question, query)
    context = {"language": who.language, "who": who, "csrf_token": who.csrf_token,
               "q": question, "rows": rows, "timezone": desk.settings.timezone}
    return desk.templates.TemplateResponse(request, "report_refunds.html", context)


def _refunds(session: Any, question: Question, query: Any) -> list[dict[str, Any]]:
    from ticketing.core.models import OrderItem, Product

    stmt = (select(RefundRequest, Order.number)
            .join(Order, Order.id == RefundRequest.order_id)
            .where(RefundRequest.created_at >= question.period.since,
                   RefundRequest.created_at < question.period.until)
            .order_by(RefundRequest.created_at.desc()).limit(500))
    reason = query.get("reason")
    if reason:
        if reason not in {r.value for r in RefundReason}:
            raise ValidationError(f"unknown refund reason {reason!r}", field="reason")
        stmt = stmt.where(RefundRequest.reason == reason)
    for name, column in (("customer", RefundRequest.customer_id), ("product", None)):
        text = query.get(name)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 9:  # an id, never "²"
            raise ValidationError(f"{name} takes a number", field=name)
        if column is not None:
            stmt = stmt.where(column == int(text))
        else:
            stmt = stmt.where(RefundRequest.order_id.in_(
                select(OrderItem.order_id).where(OrderItem.product_id == int(text))))
    category = query.get("category")
    if category:
        stmt = stmt.where(RefundRequest.order_id.in_(
            select(OrderItem.order_id).join(Product, Product.id == OrderItem.product_id)
            .where(Product.category == category[:40])))
    rows = []
    for refund, number in session.execute(stmt):
        try:
            label = REASON_LABELS[RefundReason(refund.reason)]
        except ValueError:
            label = None
        rows.append({"refund": refund, "order": number, "reason": label,
                     "amount": f"{(refund.amount_cents or 0) / 100:,.2f}"})
    return rows


# --- JSON --------------------------------------------------------------------------------------
class FigureOut(BaseModel):
    key: str
    label: str
    value: str
    n: int | None
    before: str
    link: str | None


class SummaryOut(BaseModel):
    since: date
    until: date
    figures: list[FigureOut]


@router.get("/api/v1/reports/summary", response_model=SummaryOut, tags=["reports"],
            responses=errors(403, 422))
def summary_api(request: Request, who: Reader) -> SummaryOut:
    """The dashboard's headline figures (same query string as ``/reports``)."""
    desk = desk_of(request)
    question = question_of(request, desk)
    with desk.unit_of_work() as session:
        metrics.use_report_memory(session)
        summary = metrics.summary(session, question.period, question.filters, now=desk.clock(),
                                  durations=dashboard.SUMMARY_DURATIONS)
    return SummaryOut(since=question.period.first, until=question.period.last, figures=[
        FigureOut(key=f.key, label=f.label, value=f.value, n=f.n, before=f.before, link=f.link)
        for f in dashboard.figures(summary, question, who.language)])
