"""Tiered response (rules §TIER-4, §OWN-4): escalate a ticket one tier, L1 → L2 → L3.

Escalation brings in higher-tier help as the ticket's assignee; the owner stays the owner and
stays accountable (首问负责制). Agents escalate with a reason; rules and SLA breaches escalate
as the system. Who hears of a deadline that is near or missed is decided here too
(:func:`alarm_recipients`): the worker only fires the timers.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition, KefuError, TopTierReached, ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, Role, Ticket, TicketState, Tier, TimerKind
from ticketing.core.settings import schedule_of
from ticketing.desk import lifecycle, notifications, ownership, routing, sla

log = logging.getLogger(__name__)

SOURCES = ("agent", "rule", "sla")

ESCALATED_TO_YOU = Text(
    zh="工单 {number} 已升级到 L{tier}，请协助处理。原因：{reason}",
    en="Ticket {number} was escalated to L{tier}; please help. Reason: {reason}",
)
YOUR_TICKET_ESCALATED = Text(
    zh="您负责的工单 {number} 已升级到 L{tier}，您仍是负责人。原因：{reason}",
    en="Your ticket {number} was escalated to L{tier}; you remain its owner. Reason: {reason}",
)
DEADLINE_NEAR = Text(
    zh="工单 {number} 的{kind}时限将于 {deadline} 到期，请尽快处理。",
    en="Ticket {number}: the {kind} deadline is at {deadline}. Please act soon.",
)
DEADLINE_MISSED = Text(
    zh="工单 {number} 已超出{kind}时限（{deadline}），已自动升级。",
    en="Ticket {number} missed its {kind} deadline ({deadline}) and was escalated.",
)
BREACH_REASON = Text(zh="超出{kind}时限", en="{kind} SLA breached")


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
    ticket = lifecycle.get_ticket(session, ticket_id, lock=True)
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
    lifecycle.record_event(
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


# --- SLA alarms (fired by the worker) -------------------------------------------------------------
def alarm_recipients(session: Session, ticket: Ticket) -> list[int]:
    """The owner is accountable (rules §SLA-6, §OWN-4); an unowned ticket alarms its team's supervisors,
    else every supervisor."""
    if ticket.owner_id is not None:
        return [ticket.owner_id]
    supervisors = select(Agent.id).where(Agent.role == Role.SUPERVISOR).order_by(Agent.id)
    if ticket.team_id is not None:
        team = list(session.scalars(supervisors.where(Agent.team_id == ticket.team_id)))
        if team:
            return team
    return list(session.scalars(supervisors))


def _alarm(session: Session, *, ticket: Ticket, kind: str, template: Text, timer: TimerKind,
           deadline_at: datetime | None, now: datetime) -> None:
    """The finished sentence in both languages (the timer's name translated too), to everyone
    :func:`alarm_recipients` names; the deadline in the shop's time zone."""
    name = sla.KIND_NAMES[timer]
    deadline = ("-" if deadline_at is None else
                local_time.date_time(deadline_at, timezone=schedule_of(session).timezone))
    text = Text(zh=template.get("zh", number=ticket.number, kind=name.zh, deadline=deadline),
                en=template.get("en", number=ticket.number, kind=name.en, deadline=deadline))
    for agent_id in alarm_recipients(session, ticket):
        notifications.notify(session, agent_id=agent_id, kind=kind, text=text,
                             ticket_id=ticket.id, now=now)


def warn_of_deadline(session: Session, *, ticket: Ticket, timer: TimerKind,
                     deadline_at: datetime | None, now: datetime) -> None:
    """80 % of the budget is gone: tell whoever must act before the deadline."""
    _alarm(session, ticket=ticket, kind="sla_warning", template=DEADLINE_NEAR, timer=timer,
           deadline_at=deadline_at, now=now)


def escalate_on_breach(session: Session, *, ticket: Ticket, timer: TimerKind,
                       deadline_at: datetime | None, now: datetime) -> None:
    """A missed deadline escalates one tier (the owner stays accountable) and is reported;
    at the top tier it is still reported."""
    name = sla.KIND_NAMES[timer]
    reason = f'{BREACH_REASON.get("zh", kind=name.zh)} / {BREACH_REASON.get("en", kind=name.en)}'
    try:
        escalate(session, ticket_id=ticket.id, reason=reason, source="sla", now=now)
    except KefuError as exc:  # e.g. already at the top tier
        log.info("ticket %s not escalated on %s breach: %s", ticket.id, timer.value, exc)
    _alarm(session, ticket=ticket, kind="sla_breach", template=DEADLINE_MISSED, timer=timer,
           deadline_at=deadline_at, now=now)
