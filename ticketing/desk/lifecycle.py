"""The ticket state machine (SPEC 5.1) and the event log every change writes.

new → open (claim) → waiting_customer ↔ open → solved → closed, and solved → open (reopen).
:func:`transition` checks the move before touching anything, records who/when/what/why and
runs the SLA hook that belongs to the move, so every path through the loop keeps the clocks
right. Services call it through ``tickets``; claiming (new → open) lives in ``ownership``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.desk import sla
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition
from ticketing.core.models import Ticket, TicketEvent, TicketState

ACTIVE_STATES = (TicketState.NEW, TicketState.OPEN, TicketState.WAITING_CUSTOMER)
ALLOWED: dict[TicketState, frozenset[TicketState]] = {
    TicketState.NEW: frozenset({TicketState.OPEN}),
    TicketState.OPEN: frozenset({TicketState.WAITING_CUSTOMER, TicketState.SOLVED}),
    TicketState.WAITING_CUSTOMER: frozenset({TicketState.OPEN, TicketState.SOLVED}),
    TicketState.SOLVED: frozenset({TicketState.OPEN, TicketState.CLOSED}),
    TicketState.CLOSED: frozenset(),
}
# which SLA hook follows which move (looked up at call time: sla is imported as a module)
_SLA_HOOKS: dict[tuple[TicketState, TicketState], str] = {
    (TicketState.OPEN, TicketState.WAITING_CUSTOMER): "pause",
    (TicketState.WAITING_CUSTOMER, TicketState.OPEN): "resume",
    (TicketState.OPEN, TicketState.SOLVED): "on_solved",
    (TicketState.WAITING_CUSTOMER, TicketState.SOLVED): "on_solved",
    (TicketState.SOLVED, TicketState.OPEN): "on_reopened",
    (TicketState.SOLVED, TicketState.CLOSED): "on_closed",
}


def record_event(
    session: Session,
    *,
    ticket: Ticket,
    kind: str,
    actor_type: str,
    actor_id: int | None = None,
    from_value: object = None,
    to_value: object = None,
    reason: str | None = None,
    data: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    """Append who/when/what/why to the ticket's history."""
    event = TicketEvent(
        ticket_id=ticket.id,
        at=now or utcnow(),
        kind=kind,
        actor_type=actor_type,
        actor_id=actor_id,
        from_value=None if from_value is None else str(getattr(from_value, "value", from_value)),
        to_value=None if to_value is None else str(getattr(to_value, "value", to_value)),
        reason=reason,
        data=dict(data or {}),
    )
    session.add(event)
    return event


def transition(
    session: Session,
    *,
    ticket: Ticket,
    to: TicketState | str,
    actor_type: str,
    actor_id: int | None = None,
    reason: str | None = None,
    kind: str = "state_changed",
    data: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Move ``ticket`` along the loop, record the event and run the matching SLA hook."""
    now = now or utcnow()
    to = TicketState(to)
    current = ticket.state
    if to not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value} → {to.value}", ticket_id=ticket.id)
    if to is TicketState.OPEN and ticket.owner_id is None:
        raise IllegalTransition("a ticket is opened by claiming it", ticket_id=ticket.id)
    ticket.state = to
    ticket.version = (ticket.version or 1) + 1
    if to is TicketState.SOLVED:
        ticket.solved_at = now
    elif to is TicketState.CLOSED:
        ticket.closed_at = now
    elif current is TicketState.SOLVED and to is TicketState.OPEN:
        ticket.reopen_count = (ticket.reopen_count or 0) + 1
        ticket.solved_at = None
    record_event(session, ticket=ticket, kind=kind, actor_type=actor_type, actor_id=actor_id,
                 from_value=current, to_value=to, reason=reason, data=data, now=now)
    session.flush()
    hook = _SLA_HOOKS.get((current, to))
    if hook is not None:
        getattr(sla, hook)(session, ticket=ticket, now=now)
    return ticket
