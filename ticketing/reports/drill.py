"""From a number to its tickets: the ticket set behind every figure on the reports.

A drill is a metric key plus the period and filters of the page it came from; table rows and
chart bars add one more filter (``Filters.narrowed``) and, for a day or week, a shorter period.
Each key says which date it counts by, exactly as the metric does (docs/metrics.md), so the
list behind "CSAT 50 % (n=2)" has two tickets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import (
    Agent,
    RefundRequest,
    Survey,
    Team,
    Ticket,
    TicketFact,
)
from ticketing.reports.aggregates import SLA_TARGETS
from ticketing.reports.metrics import OPEN_STATES, breach_clause, late_clause, met_clause
from ticketing.reports.scope import Filters, Period

PAGE_SIZE = 50


@dataclass(frozen=True)
class Drill:
    key: str
    label: Text
    basis: str  # "created" | "survey" | "now"


def _drills() -> dict[str, Drill]:
    found = [
        Drill("tickets", Text("期间内的工单", "Tickets in the period"), "created"),
        Drill("surveys", Text("已发送的满意度评价", "Surveys sent"), "survey"),
        Drill("csat_responses", Text("已回复的评价", "Surveys answered"), "survey"),
        Drill("csat_satisfied", Text("满意（4–5 分）", "Satisfied (4–5)"), "survey"),
        Drill("csat_low", Text("低于 3 分的评价", "Scores below 3"), "survey"),
        Drill("unanswered", Text("尚无人工回复", "No human reply yet"), "created"),
        Drill("answered", Text("已有人工回复", "Answered by a person"), "created"),
        Drill("solved", Text("已解决过的工单", "Tickets ever solved"), "created"),
        Drill("reopened", Text("解决后被重开", "Reopened after solving"), "created"),
        Drill("escalated", Text("升级过的工单", "Escalated tickets"), "created"),
        Drill("handed_off", Text("机器人转人工", "Handed off by the bot"), "created"),
        Drill("sla_breached", Text("有超时的工单", "Tickets with a breach"), "created"),
        Drill("breached_now", Text("当前超时且未解决", "Breached now, unsolved"), "now"),
    ]
    for score in range(1, 6):
        found.append(Drill(f"csat_score_{score}", Text(f"{score} 分的评价", f"Scored {score}"),
                           "survey"))
    names = {"first_response": Text("首次响应", "first response"),
             "next_response": Text("后续响应", "next response"),
             "resolution": Text("解决", "resolution")}
    for target in SLA_TARGETS:
        name = names[target]
        found.append(Drill(f"sla_{target}_late", Text(f"{name.zh}超时", f"Missed {name.en}"),
                           "created"))
        found.append(Drill(f"sla_{target}_met", Text(f"{name.zh}达标", f"Met {name.en}"),
                           "created"))
    return {d.key: d for d in found}


DRILLS = _drills()


def drill_of(key: str) -> Drill:
    try:
        return DRILLS[key]
    except KeyError:
        raise ValidationError(f"unknown metric {key!r}", field="metric") from None


def where(key: str, period: Period, filters: Filters, *, now: datetime
          ) -> list[ColumnElement[bool]]:
    """The conditions on ``ticket_facts`` that select the tickets behind ``key``."""
    drill = drill_of(key)
    clauses: list[ColumnElement[bool]]
    if drill.basis == "survey":
        clauses = [TicketFact.survey_sent_at >= period.since,
                   TicketFact.survey_sent_at < period.until,
                   # implied (a survey follows its ticket): the newest-first list's backward
                   # scan of created_at then starts at the window, not at today
                   TicketFact.created_at < period.until, *filters.surveys()]
    elif drill.basis == "created":
        clauses = [TicketFact.created_at >= period.since, TicketFact.created_at < period.until,
                   *filters.tickets()]
    else:
        clauses = [TicketFact.state.in_(OPEN_STATES), breach_clause(now), *filters.tickets()]
    clauses += _condition(key, now)
    return clauses


def _condition(key: str, now: datetime) -> list[ColumnElement[bool]]:
    score = TicketFact.csat_score
    fixed: dict[str, list[ColumnElement[bool]]] = {
        "csat_responses": [score.is_not(None)],
        "csat_satisfied": [score >= 4],
        "csat_low": [score < 3],
        "unanswered": [TicketFact.first_response_at.is_(None)],
        "answered": [TicketFact.first_response_at.is_not(None)],
        "solved": [TicketFact.first_solved_at.is_not(None)],
        "reopened": [and_(TicketFact.first_solved_at.is_not(None), TicketFact.reopened > 0)],
        "escalated": [TicketFact.escalated > 0],
        "handed_off": [TicketFact.handed_off.is_(True)],
        "sla_breached": [breach_clause(now)],
    }
    if key in fixed:
        return fixed[key]
    if key.startswith("csat_score_"):
        return [score == int(key.rsplit("_", 1)[1])]
    if key.startswith("sla_") and key.endswith(("_late", "_met")):
        target, _, verdict = key[4:].rpartition("_")
        return [late_clause(target, now) if verdict == "late" else met_clause(target)]
    return []


# --- the list -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TicketLine:
    """One ticket in a drill-down list or the per-ticket export. No contact details: ever."""

    id: int
    number: str
    created_at: datetime
    segment: str
    channel: str
    category: str
    priority: str
    tier: int
    state: str
    owner: str | None
    team_zh: str | None
    team_en: str | None
    first_response_at: datetime | None
    first_response_s: float | None
    last_solved_at: datetime | None
    sla_first_response: str | None
    sla_next_response: str | None
    sla_resolution: str | None
    sla_first_response_due_at: datetime | None
    sla_next_response_due_at: datetime | None
    sla_resolution_due_at: datetime | None
    csat_score: int | None
    comment: str | None
    refund_reason: str | None
    subject: str

    def sla_outcome(self, target: str, now: datetime) -> str | None:
        """met / breached / running, counting a running clock past its deadline as breached."""
        verdict = getattr(self, f"sla_{target}")
        due = getattr(self, f"sla_{target}_due_at")
        if verdict == "pending":
            return "breached" if due is not None and due < now else "running"
        return verdict


def _lines(clauses: list[ColumnElement[bool]]) -> Select[Any]:
    owner = aliased(Agent)
    refund_reason = (select(RefundRequest.reason)
                     .where(RefundRequest.ticket_id == TicketFact.ticket_id)
                     .order_by(RefundRequest.id.desc()).limit(1).scalar_subquery())
    return (
        select(TicketFact.ticket_id, Ticket.number, TicketFact.created_at, TicketFact.segment,
               TicketFact.channel, TicketFact.category, TicketFact.priority, TicketFact.tier,
               TicketFact.state, owner.display_name, Team.name_zh, Team.name_en,
               TicketFact.first_response_at, TicketFact.first_response_s,
               TicketFact.last_solved_at, TicketFact.sla_first_response,
               TicketFact.sla_next_response, TicketFact.sla_resolution,
               TicketFact.sla_first_response_due_at, TicketFact.sla_next_response_due_at,
               TicketFact.sla_resolution_due_at, TicketFact.csat_score, Survey.comment,
               refund_reason, Ticket.subject)
        .join(Ticket, Ticket.id == TicketFact.ticket_id)
        .outerjoin(owner, owner.id == TicketFact.owner_id)
        .outerjoin(Team, Team.id == TicketFact.team_id)
        .outerjoin(Survey, Survey.ticket_id == TicketFact.ticket_id)
        .where(*clauses)
    )


def tickets(session: Session, key: str, period: Period, filters: Filters, *, now: datetime,
            page: int = 1, page_size: int = PAGE_SIZE,
            visible: ColumnElement[bool] | None = None) -> tuple[list[TicketLine], int]:
    """One page of the tickets behind ``key`` (newest first) and how many there are in all.
    ``visible``: a clause on :class:`Ticket` the reader's role allows (a supervisor's lists
    hold only the tickets they may open; the figures above them count every ticket)."""
    if page < 1 or not 1 <= page_size <= 500:
        raise ValidationError("page must be 1 or more, page_size 1-500", field="page")
    clauses = where(key, period, filters, now=now)
    counted = select(func.count()).select_from(TicketFact)
    if visible is not None:
        clauses.append(visible)
        counted = counted.join(Ticket, Ticket.id == TicketFact.ticket_id)
    total = session.scalar(counted.where(*clauses)) or 0
    rows = session.execute(
        _lines(clauses).order_by(TicketFact.created_at.desc(), TicketFact.ticket_id.desc())
        .limit(page_size).offset((page - 1) * page_size))
    return [TicketLine(*row) for row in rows], total


def all_tickets(session: Session, key: str, period: Period, filters: Filters, *,
                now: datetime, batch: int = 2000,
                visible: ColumnElement[bool] | None = None) -> Iterator[TicketLine]:
    """Every ticket behind ``key``, oldest first, streamed in batches (for the CSV export);
    ``visible`` as in :func:`tickets`."""
    clauses = where(key, period, filters, now=now)
    if visible is not None:
        clauses.append(visible)
    after: tuple[datetime, int] | None = None
    while True:
        stmt = _lines(clauses).order_by(TicketFact.created_at, TicketFact.ticket_id).limit(batch)
        if after is not None:
            stmt = stmt.where((TicketFact.created_at > after[0]) | and_(
                TicketFact.created_at == after[0], TicketFact.ticket_id > after[1]))
        rows = [TicketLine(*row) for row in session.execute(stmt)]
        if not rows:
            return
        yield from rows
        after = (rows[-1].created_at, rows[-1].id)
