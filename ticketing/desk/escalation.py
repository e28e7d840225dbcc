"""Tiered response (SPEC 5.3): escalate a ticket one tier, L1 → L2 → L3.

Escalation brings in higher-tier help as the ticket's assignee; the owner stays the owner and
stays accountable (首问负责制). Agents escalate with a reason; rules and SLA breaches escalate
as the system.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.desk import notifications, ownership, routing, tickets
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition, TopTierReached, ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import Ticket, TicketState, Tier

SOURCES = ("agent", "rule", "sla")

ESCALATED_TO_YOU = Text(
    zh="工单 {number} 已升级到 L{tier}，请协助处理。原因：{reason}",
    en="Ticket {number} was escalated to L{tier}; please help. Reason: {reason}",
)
YOUR_TICKET_ESCALATED = Text(
    zh="您负责的工单 {number} 已升级到 L{tier}，您仍是负责人。原因：{reason}",
    en="Your ticket {number} was escalated to L{tier}; you remain its owner. Reason: {reason}",
)


def escalate(
    session: Session,
    *,
    ticket_id: int,
    reason: str,
    source: str,
    by_agent_id: int | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Raise the tier by one and bring in the least-loaded available agent of that tier."""
    now = now or utcnow()
    if source not in SOURCES:
        raise ValidationError(f"source must be one of {SOURCES}")
    if reason is None or not reason.strip():
        raise ValidationError("an escalation needs a reason")
    reason = reason.strip()
    if source == "agent" and by_agent_id is None:
        raise ValidationError("by_agent_id is required when an agent escalates")
    ticket = tickets.get_ticket(session, ticket_id, lock=True)
    if source == "agent":
        assert by_agent_id is not None
        ownership.require_worker(session, ticket=ticket, agent_id=by_agent_id)
    if ticket.state in (TicketState.SOLVED, TicketState.CLOSED):
        raise IllegalTransition(f"cannot escalate a {ticket.state.value} ticket",
                                ticket_id=ticket.id)
    if ticket.tier >= Tier.L3.value:
        raise TopTierReached(ticket_id=ticket.id)

    old_tier, new_tier = ticket.tier, ticket.tier + 1
    helper = routing.pick_agent(session, tier=new_tier, category=ticket.category,
                                exclude={ticket.owner_id, by_agent_id})
    ticket.tier = new_tier
    ticket.version = (ticket.version or 1) + 1
    if helper is not None:
        ticket.assignee_id = helper.id
        ticket.team_id = helper.team_id
    actor_type = "agent" if source == "agent" else "system"
    tickets.record_event(
        session, ticket=ticket, kind="escalated", actor_type=actor_type,
        actor_id=by_agent_id if source == "agent" else None, from_value=old_tier,
        to_value=new_tier, reason=reason,
        data={"source": source, "assignee_id": helper.id if helper else None,
              "owner_id": ticket.owner_id},
        now=now,
    )
    values = {"number": ticket.number, "tier": new_tier, "reason": reason}
    if helper is not None:
        notifications.notify(session, agent_id=helper.id, kind="escalated",
                             text=ESCALATED_TO_YOU, ticket_id=ticket.id, values=values, now=now)
    if ticket.owner_id is not None and ticket.owner_id != by_agent_id:
        notifications.notify(session, agent_id=ticket.owner_id, kind="escalated",
                             text=YOUR_TICKET_ESCALATED, ticket_id=ticket.id, values=values,
                             now=now)
    session.flush()
    return ticket
