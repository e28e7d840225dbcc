"""What the supervisors' team board reads: each team's people and where promises break now.

For each team: its active agents and supervisors (managers and admins work no tickets) with
their availability, open load (tickets they own in new / open / waiting states) against their
cap, their breaches now and the customer who has waited longest for them; and the team's
unclaimed tickets (new, no owner, of its tier and a category it serves, as its queue shows
them) and breaches now (its members' and its unclaimed ones).

A ticket is **in breach now** when it is live and one of its SLA clocks is past its deadline
and still unkept: a running clock past its deadline (the worker may not have fired it yet), a
paused one with no time left, or a breached one not since met — a resolution breach lasts
until the ticket is solved, a response breach until an agent answers publicly after it. An
older generation replaced by a restart no longer counts.

A fixed number of queries, whatever the number of teams or agents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from ticketing.core.clock import aware
from ticketing.core.models import (
    Agent, Availability, Role, SlaTimer, Team, Ticket, TicketMessage, TicketState, TimerKind,
    TimerStatus,
)
from ticketing.desk import access, lifecycle, routing
from ticketing.desk.sla import RESPONSE_KINDS, SLA_KINDS

LIVE = lifecycle.ACTIVE_STATES


class BoardAgentOut(BaseModel):
    id: int
    name: str
    role: Role
    availability: Availability
    open_tickets: int
    max_open_tickets: int
    breaches: int
    waiting_since: datetime | None  # the oldest running response clock of a ticket they own
    waiting_ticket_id: int | None
    waiting_ticket_number: str | None


class BoardTeamOut(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    tier: int
    online: int
    unclaimed: int
    breaches: int
    agents: list[BoardAgentOut]


class BoardOut(BaseModel):
    at: datetime
    teams: list[BoardTeamOut]


def breached_now(now: datetime) -> ColumnElement[bool]:
    """A WHERE clause on :class:`Ticket`: one of its SLA clocks is broken and still unkept."""
    timer, newer = aliased(SlaTimer), aliased(SlaTimer)
    answered = exists().where(TicketMessage.ticket_id == timer.ticket_id,
                              TicketMessage.author_type == "agent",
                              TicketMessage.internal == false(),
                              TicketMessage.at >= timer.breached_at)
    restarted = exists().where(newer.ticket_id == timer.ticket_id, newer.kind == timer.kind,
                               newer.generation > timer.generation)
    return exists().where(
        timer.ticket_id == Ticket.id, timer.kind.in_(SLA_KINDS),
        or_(and_(timer.status == TimerStatus.ACTIVE, timer.deadline_at <= now),
            and_(timer.status == TimerStatus.PAUSED,
                 func.coalesce(timer.remaining_seconds, 0) <= 0),
            and_(timer.breached_at.is_not(None), ~restarted,
                 or_(timer.kind == TimerKind.RESOLUTION, ~answered))))


def _per_owner(session: Session, owners: Collection[int], *condition: ColumnElement[bool]
               ) -> dict[int, int]:
    if not owners:
        return {}
    return dict(session.execute(
        select(Ticket.owner_id, func.count()).where(
            Ticket.owner_id.in_(list(owners)), Ticket.state.in_(LIVE), *condition)
        .group_by(Ticket.owner_id)).tuples().all())


def _waiting(session: Session, owners: Collection[int]
             ) -> dict[int, tuple[datetime, int, str]]:
    """Per owner: since when, and on which ticket, a customer has waited longest for a reply."""
    if not owners:
        return {}
    found: dict[int, tuple[datetime, int, str]] = {}
    for owner_id, started, ticket_id, number in session.execute(
        select(Ticket.owner_id, SlaTimer.started_at, Ticket.id, Ticket.number)
        .join(SlaTimer, SlaTimer.ticket_id == Ticket.id)
        .where(Ticket.owner_id.in_(list(owners)), Ticket.state.in_(LIVE),
               SlaTimer.kind.in_(RESPONSE_KINDS), SlaTimer.status == TimerStatus.ACTIVE)
        .order_by(SlaTimer.started_at, Ticket.id)
    ).tuples():
        found.setdefault(owner_id, (aware(started), ticket_id, number))
    return found


def _unclaimed(session: Session, now: datetime, *, breached: bool) -> Counter[tuple[int, str]]:
    """Unclaimed new tickets per (tier, category)."""
    stmt = (select(Ticket.tier, Ticket.category, func.count())
            .where(Ticket.owner_id.is_(None), Ticket.state == TicketState.NEW)
            .group_by(Ticket.tier, Ticket.category))
    if breached:
        stmt = stmt.where(breached_now(now))
    return Counter({(tier, category.value): count
                    for tier, category, count in session.execute(stmt).tuples()})


def _served(team: Team, pools: Counter[tuple[int, str]]) -> int:
    return sum(count for (tier, category), count in pools.items()
               if tier == team.tier and routing.serves(team, category))


def board(session: Session, *, team_ids: Collection[int] | None, now: datetime) -> BoardOut:
    """The board of ``team_ids`` (None: every team), teams by tier and code, people by name."""
    stmt = select(Team).order_by(Team.tier, Team.code)
    if team_ids is not None:
        stmt = stmt.where(Team.id.in_(list(team_ids) or [-1]))
    teams = list(session.scalars(stmt))
    people = list(session.scalars(
        select(Agent).where(Agent.team_id.in_([t.id for t in teams] or [-1]),
                            Agent.active.is_(True), Agent.role.in_(tuple(access.WORKERS)))
        .order_by(Agent.display_name, Agent.id)))
    ids = [a.id for a in people]
    loads = _per_owner(session, ids)
    breaches = _per_owner(session, ids, breached_now(now))
    waiting = _waiting(session, ids)
    unclaimed, unclaimed_breached = (_unclaimed(session, now, breached=False),
                                     _unclaimed(session, now, breached=True))
    out = []
    for team in teams:
        members = [
            BoardAgentOut(
                id=a.id, name=a.display_name, role=a.role, availability=a.availability,
                open_tickets=loads.get(a.id, 0), max_open_tickets=a.max_open_tickets,
                breaches=breaches.get(a.id, 0),
                waiting_since=waiting[a.id][0] if a.id in waiting else None,
                waiting_ticket_id=waiting[a.id][1] if a.id in waiting else None,
                waiting_ticket_number=waiting[a.id][2] if a.id in waiting else None)
            for a in people if a.team_id == team.id]
        out.append(BoardTeamOut(
            id=team.id, code=team.code, name_zh=team.name_zh, name_en=team.name_en,
            tier=team.tier, agents=members,
            online=sum(1 for m in members if m.availability is Availability.ONLINE),
            unclaimed=_served(team, unclaimed),
            breaches=sum(m.breaches for m in members) + _served(team, unclaimed_breached)))
    return BoardOut(at=now, teams=out)
