"""What each desk role may see and do (rules §SEC-5: roles, least privilege).

- an **agent** sees their own tickets (owner or escalation helper), their team's tickets and
  the unclaimed tickets their team serves at its tier;
- a **supervisor** sees the same for their team, including unclaimed tickets of lower tiers,
  and may reassign within it (the ownership rules let supervisors transfer and claim);
- a **manager** reads everything, an **admin** too; neither works tickets (read-only here).

Every id that reaches the desk is checked here: a ticket, customer or order the person may not
see is *not found*, never *forbidden*, so ids cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from ticketing.core.errors import (
    CustomerNotFound,
    OrderNotFound,
    PermissionDenied,
    TicketNotFound,
)
from ticketing.core.models import Agent, Customer, Order, Role, Team, Ticket

READ_EVERYTHING = frozenset({Role.MANAGER, Role.ADMIN})
WORKERS = frozenset({Role.AGENT, Role.SUPERVISOR})


def reads_everything(agent: Agent) -> bool:
    return agent.role in READ_EVERYTHING


def works_tickets(agent: Agent) -> bool:
    """Agents and supervisors claim, reply and solve; managers and admins only read."""
    return agent.role in WORKERS


def require_worker_role(agent: Agent) -> None:
    if not works_tickets(agent):
        raise PermissionDenied("managers and admins read tickets; agents work them")


def _team_members(team_id: int):  # noqa: ANN202 - a scalar subquery
    return select(Agent.id).where(Agent.team_id == team_id).scalar_subquery()


def _served_unclaimed(team: Team, *, lower_tiers: bool) -> ColumnElement[bool]:
    tier = Ticket.tier <= team.tier if lower_tiers else Ticket.tier == team.tier
    categories = list(team.categories or [])
    served = true() if "*" in categories else (
        Ticket.category.in_(categories) if categories else false())
    return and_(Ticket.owner_id.is_(None), tier, served)


def visible_tickets(session: Session, agent: Agent) -> ColumnElement[bool]:
    """A WHERE clause on :class:`Ticket`: the tickets ``agent`` may see."""
    if reads_everything(agent):
        return true()
    mine = or_(Ticket.owner_id == agent.id, Ticket.assignee_id == agent.id)
    if agent.team_id is None:
        return mine
    team = session.get(Team, agent.team_id)
    members = _team_members(agent.team_id)
    teams = or_(Ticket.team_id == agent.team_id, Ticket.owner_id.in_(members),
                Ticket.assignee_id.in_(members))
    unclaimed = (_served_unclaimed(team, lower_tiers=agent.role is Role.SUPERVISOR)
                 if team is not None else false())
    return or_(mine, teams, unclaimed)


def require_ticket(session: Session, agent: Agent, ticket_id: int) -> Ticket:
    """The ticket if ``agent`` may see it; otherwise TicketNotFound, as if it did not exist."""
    ticket = session.scalar(
        select(Ticket).where(Ticket.id == ticket_id, visible_tickets(session, agent)))
    if ticket is None:
        raise TicketNotFound(ticket_id=ticket_id)
    return ticket


def require_customer(session: Session, agent: Agent, customer_id: int) -> Customer:
    """A customer is visible through a ticket of theirs the agent may see."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id=customer_id)
    if not reads_everything(agent):
        seen = session.scalar(
            select(Ticket.id).where(Ticket.customer_id == customer_id,
                                    visible_tickets(session, agent)).limit(1))
        if seen is None:
            raise CustomerNotFound(customer_id=customer_id)
    return customer


def require_order(session: Session, agent: Agent, order_id: int) -> Order:
    """An order is visible when its customer is."""
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(order_id=order_id)
    try:
        require_customer(session, agent, order.customer_id)
    except CustomerNotFound:
        raise OrderNotFound(order_id=order_id) from None
    return order
