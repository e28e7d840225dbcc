"""Automatic dispatch (rules §DISP-1): the available agent of the right team and tier, least loaded.

A team serves a tier and a list of categories ("*" for all). An agent is available when
active (not deactivated by an admin), online and below their ``max_open_tickets``; load counts
live tickets they own or assist on.
First-contact ownership (rules §OWN-3) comes first: a new ticket about an order goes back to the
agent who owned the customer's earlier ticket on that order, if they are free to take it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.desk import lifecycle, notifications, ownership
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Availability, Category, Team, Ticket, TicketState

ASSIGNED_TO_YOU = Text(
    zh="工单 {number} 已自动分配给您。",
    en="Ticket {number} was assigned to you automatically.",
)
RETURNED_TO_OWNER = Text(
    zh="工单 {number} 已自动分配给您：该客户此前关于同一订单的工单由您负责。",
    en="Ticket {number} was assigned to you automatically: you owned this customer's "
    "earlier ticket about the same order.",
)


def serves(team: Team, category: Category | str) -> bool:
    value = Category(category).value
    return "*" in (team.categories or []) or value in (team.categories or [])


def loads(session: Session, agent_ids: Collection[int]) -> Counter[int]:
    """Live tickets per agent, as owner or as assignee."""
    counts: Counter[int] = Counter()
    if not agent_ids:
        return counts
    live = Ticket.state.in_(lifecycle.ACTIVE_STATES)
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
        .where(Agent.active.is_(True), Agent.availability == Availability.ONLINE,
               Agent.id.not_in([a for a in exclude if a is not None] or [-1]))
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


def is_available(session: Session, agent: Agent) -> bool:
    """Active, online and below their ``max_open_tickets``."""
    if not agent.active or agent.availability is not Availability.ONLINE:
        return False
    return loads(session, [agent.id])[agent.id] < agent.max_open_tickets


def previous_owner(session: Session, *, ticket: Ticket) -> Agent | None:
    """The owner of the customer's newest other ticket about the same order, if that agent
    is available and may take this ticket (tier high enough, or a supervisor).

    Tickets without an order have no "same matter" to follow, so they get None.
    """
    if ticket.order_id is None:
        return None
    owner_id = session.scalar(
        select(Ticket.owner_id)
        .where(Ticket.customer_id == ticket.customer_id, Ticket.order_id == ticket.order_id,
               Ticket.id != ticket.id, Ticket.owner_id.is_not(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    agent = session.get(Agent, owner_id) if owner_id is not None else None
    if agent is None or (agent.tier < ticket.tier and not ownership.is_supervisor(agent)):
        return None
    return agent if is_available(session, agent) else None


def auto_assign(
    session: Session, *, ticket_id: int, now: datetime | None = None
) -> Ticket | None:
    """Dispatch a new ticket: to the previous owner of the same order's ticket if free, else
    to the least-loaded available agent of its tier and category. The claim is made on the
    agent's behalf (event source "auto") and the agent is notified.

    Returns None, writing nothing, when the ticket is already owned or nobody is free. Two
    dispatchers racing for one ticket are settled by the claim's conditional UPDATE: the loser
    gets AlreadyClaimed. The load cap is checked before claiming, so concurrent dispatchers may
    overshoot ``max_open_tickets`` by a ticket or two; it is a target, not a lock.
    """
    ticket = lifecycle.get_ticket(session, ticket_id)
    if ticket.owner_id is not None or ticket.state is not TicketState.NEW:
        return None
    agent = previous_owner(session, ticket=ticket)
    text = RETURNED_TO_OWNER
    if agent is None:
        agent = pick_agent(session, tier=ticket.tier, category=ticket.category,
                           supervisor_fallback=False)
        text = ASSIGNED_TO_YOU
    if agent is None:
        return None
    ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id, source="auto", now=now)
    notifications.notify(session, agent_id=agent.id, kind="assigned", text=text,
                         ticket_id=ticket.id, values={"number": ticket.number}, now=now)
    return ticket
