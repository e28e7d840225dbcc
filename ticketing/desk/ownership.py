"""First-contact ownership (首问负责制, rules §OWN-1…§OWN-3): claim, transfer, and routing contacts back.

The first agent who claims a ticket owns it until closure. Claiming is one conditional UPDATE
(``WHERE owner_id IS NULL``), so when two agents click at once the database picks exactly one
winner. Ownership then moves only by an explicit transfer with a reason, which is logged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.desk import lifecycle, notifications
from ticketing.core.clock import utcnow
from ticketing.core.errors import (
    AgentNotFound,
    AlreadyClaimed,
    Conflict,
    IllegalTransition,
    PermissionDenied,
    ValidationError,
)
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Role, Ticket, TicketState

SUPERVISOR_ROLES = frozenset({Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})

TRANSFERRED_TO_YOU = Text(
    zh="工单 {number} 已转交给您，原因：{reason}",
    en="Ticket {number} was transferred to you. Reason: {reason}",
)


def is_supervisor(agent: Agent) -> bool:
    return agent.role in SUPERVISOR_ROLES


def require_agent(session: Session, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFound(agent_id=agent_id)
    return agent


def require_worker(session: Session, *, ticket: Ticket, agent_id: int) -> Agent:
    """The agent, if they may work this ticket: its owner, its assignee, or a supervisor."""
    agent = require_agent(session, agent_id)
    if agent.id in (ticket.owner_id, ticket.assignee_id) or is_supervisor(agent):
        return agent
    raise PermissionDenied("only the owner, the assignee or a supervisor", ticket_id=ticket.id)


def claim(
    session: Session,
    *,
    ticket_id: int,
    agent_id: int,
    source: str = "agent",
    now: datetime | None = None,
) -> Ticket:
    """Take a new ticket. Exactly one of several simultaneous claimants wins; the others get
    AlreadyClaimed. Claiming one's own ticket again is a no-op. Agents claim only tickets at
    or below their tier; supervisors claim any.
    """
    now = now or utcnow()
    agent = require_agent(session, agent_id)
    ticket = lifecycle.get_ticket(session, ticket_id)
    if ticket.owner_id == agent.id:
        return ticket
    if ticket.owner_id is not None:
        raise AlreadyClaimed(ticket_id=ticket.id, owner_id=ticket.owner_id)
    if ticket.state is not TicketState.NEW:
        raise IllegalTransition(f"{ticket.state.value} → claimed", ticket_id=ticket.id)
    if agent.tier < ticket.tier and not is_supervisor(agent):
        raise PermissionDenied("this ticket needs a higher tier", ticket_id=ticket.id)
    values: dict[str, object] = dict(owner_id=agent.id, state=TicketState.OPEN, claimed_at=now,
                                     team_id=ticket.team_id or agent.team_id,
                                     version=Ticket.version + 1)
    if ticket.assignee_id == agent.id:
        values["assignee_id"] = None  # the escalation helper became the owner: one role only
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.owner_id.is_(None),
               Ticket.state == TicketState.NEW)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise AlreadyClaimed(ticket_id=ticket.id)
    session.refresh(ticket)
    lifecycle.record_event(session, ticket=ticket, kind="claimed", actor_type="agent",
                         actor_id=agent.id, from_value=TicketState.NEW,
                         to_value=TicketState.OPEN,
                         data={"owner_id": agent.id, "source": source}, now=now)
    session.flush()
    return ticket


def transfer(
    session: Session,
    *,
    ticket_id: int,
    to_agent_id: int,
    by_agent_id: int,
    reason: str,
    now: datetime | None = None,
) -> Ticket:
    """Hand ownership to another agent: the owner or a supervisor may, always with a reason.

    A supervisor transferring an unclaimed ticket assigns it (it becomes open).
    """
    now = now or utcnow()
    if reason is None or not reason.strip():
        raise ValidationError("a transfer needs a reason")
    reason = reason.strip()
    by = require_agent(session, by_agent_id)
    to = require_agent(session, to_agent_id)
    if not to.active:  # a deactivated agent cannot own anything new
        raise AgentNotFound(agent_id=to_agent_id)
    ticket = lifecycle.get_ticket(session, ticket_id)
    if by.id != ticket.owner_id and not is_supervisor(by):
        raise PermissionDenied("only the owner or a supervisor may transfer", ticket_id=ticket.id)
    if ticket.state is TicketState.CLOSED:
        raise IllegalTransition("ticket is closed", ticket_id=ticket.id)
    if to.id == ticket.owner_id:
        raise ValidationError("the ticket already belongs to that agent")
    previous, version = ticket.owner_id, ticket.version
    values: dict[str, object] = {"owner_id": to.id, "version": version + 1}
    if ticket.state is TicketState.NEW:
        values.update(state=TicketState.OPEN, claimed_at=now)
    if to.id == ticket.assignee_id:
        values["assignee_id"] = None  # the helper became the owner
    result = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.version == version)
        .values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict("the ticket changed meanwhile; reload and retry", ticket_id=ticket.id)
    session.refresh(ticket)
    lifecycle.record_event(session, ticket=ticket, kind="transferred", actor_type="agent",
                         actor_id=by.id, from_value=previous, to_value=to.id, reason=reason,
                         data={"from_owner_id": previous, "to_owner_id": to.id}, now=now)
    audit.record(session, action="ticket.transfer", actor_type="agent", actor_id=by.id,
                 target_type="ticket", target_id=ticket.id,
                 details={"from_owner_id": previous, "to_owner_id": to.id, "reason": reason},
                 now=now)
    notifications.notify(session, agent_id=to.id, kind="transferred", text=TRANSFERRED_TO_YOU,
                         ticket_id=ticket.id, values={"number": ticket.number, "reason": reason},
                         now=now)
    session.flush()
    return ticket


def route_contact(
    session: Session,
    *,
    customer_id: int,
    order_id: int | None = None,
    window: timedelta | None = None,
    now: datetime | None = None,
) -> Ticket | None:
    """The ticket a new contact belongs to: the customer's newest live ticket about the same
    order (``None`` matches tickets without an order), or one solved within ``window``.
    The caller appends to it instead of opening a duplicate.
    """
    now = now or utcnow()
    window = lifecycle.reopen_window(session) if window is None else window
    order_match = Ticket.order_id.is_(None) if order_id is None else Ticket.order_id == order_id
    stmt = (
        select(Ticket)
        .where(
            Ticket.customer_id == customer_id,
            order_match,
            or_(
                Ticket.state.in_(lifecycle.ACTIVE_STATES),
                (Ticket.state == TicketState.SOLVED) & (Ticket.solved_at >= now - window),
            ),
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()
