"""Automatic dispatch (SPEC 5.1): the available agent of the right team and tier, least loaded.

A team serves a tier and a list of categories ("*" for all). An agent is available when
online and below their ``max_open_tickets``; load counts live tickets they own or assist on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing import ownership, tickets
from ticketing.models import Agent, Availability, Category, Team, Ticket, TicketState


def serves(team: Team, category: Category | str) -> bool:
    value = Category(category).value
    return "*" in (team.categories or []) or value in (team.categories or [])


def loads(session: Session, agent_ids: Collection[int]) -> Counter[int]:
    """Live tickets per agent, as owner or as assignee."""
    counts: Counter[int] = Counter()
    if not agent_ids:
        return counts
    live = Ticket.state.in_(tickets.ACTIVE_STATES)
    for column in (Ticket.owner_id, Ticket.assignee_id):
        rows = session.execute(select(column).where(live, column.in_(list(agent_ids))))
        counts.update(agent_id for (agent_id,) in rows)
    return counts


def _least_loaded(session: Session, agents: list[Agent]) -> Agent | None:
    counts = loads(session, [a.id for a in agents])
    free = [a for a in agents if counts[a.id] < a.max_open_tickets]
    return min(free, key=lambda a: (counts[a.id], a.id), default=None)


def pick_agent(
    session: Session,
    *,
    tier: int,
    category: Category | str,
    exclude: Collection[int | None] = (),
    supervisor_fallback: bool = True,
) -> Agent | None:
    """The least-loaded available agent of a team serving ``category`` at ``tier``; failing
    that (with ``supervisor_fallback``) the least-loaded available supervisor at or above
    ``tier``, then any available supervisor. None when nobody is free.
    """
    online = (
        select(Agent)
        .join(Team, Agent.team_id == Team.id)
        .where(Agent.availability == Availability.ONLINE, Agent.id.not_in(
            [a for a in exclude if a is not None] or [-1]))
    )
    at_tier = list(session.scalars(online.where(Team.tier == tier)))
    chosen = _least_loaded(
        session, [a for a in at_tier if a.team is not None and serves(a.team, category)]
    )
    if chosen is not None or not supervisor_fallback:
        return chosen
    bosses = [a for a in session.scalars(online) if ownership.is_supervisor(a)]
    return _least_loaded(session, [a for a in bosses if a.tier >= tier]) or _least_loaded(
        session, bosses
    )


def auto_assign(
    session: Session, *, ticket_id: int, now: datetime | None = None
) -> Ticket | None:
    """Dispatch a new ticket to an available agent of its tier (claimed on their behalf).

    Returns None, writing nothing, when the ticket is already owned or nobody is free.
    """
    ticket = tickets.get_ticket(session, ticket_id)
    if ticket.owner_id is not None or ticket.state is not TicketState.NEW:
        return None
    agent = pick_agent(session, tier=ticket.tier, category=ticket.category,
                       supervisor_fallback=False)
    if agent is None:
        return None
    return ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id, source="auto",
                           now=now)
