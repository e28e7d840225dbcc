"""The ticket state machine (rules §LOOP-1), the ticket lookup and the event log every change writes.

new → open (claim) → waiting_customer ↔ open → solved → closed, and solved → open (reopen).
:func:`transition` checks the move before touching anything, records who/when/what/why and
runs the SLA hook that belongs to the move, so every path through the loop keeps the clocks
right. Everything above the state machine (``tickets``, ``ownership``, ``escalation``, ``csat``,
``followup``) builds on this module; it knows only the SLA clocks below it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition, TicketNotFound
from ticketing.core.models import Ticket, TicketEvent, TicketState
from ticketing.core.settings import schedule_of
from ticketing.desk import sla
# every ticket change reaches the state machine's module: loading it turns on the listeners
# that keep the reports' facts in step (ticketing.desk.facts)
from ticketing.desk import facts as _facts  # noqa: F401
from ticketing.desk.webhooks import events as _webhooks  # noqa: F401  (and the webhook events)

ACTIVE_STATES = (TicketState.NEW, TicketState.OPEN, TicketState.WAITING_CUSTOMER)
ALLOWED: dict[TicketState, frozenset[TicketState]] = {
    TicketState.NEW: frozenset({TicketState.OPEN}),
    TicketState.OPEN: frozenset({TicketState.WAITING_CUSTOMER, TicketState.SOLVED}),
    TicketState.WAITING_CUSTOMER: frozenset({TicketState.OPEN, TicketState.SOLVED}),
    TicketState.SOLVED: frozenset({TicketState.OPEN, TicketState.CLOSED}),
    TicketState.CLOSED: frozenset(),
}
SlaHook = Callable[..., object]  # sla.<hook>(session, *, ticket, now)
# which SLA hook follows which move
_SLA_HOOKS: dict[tuple[TicketState, TicketState], SlaHook] = {
    (TicketState.OPEN, TicketState.WAITING_CUSTOMER): sla.pause,
    (TicketState.WAITING_CUSTOMER, TicketState.OPEN): sla.resume,
    (TicketState.OPEN, TicketState.SOLVED): sla.on_solved,
    (TicketState.WAITING_CUSTOMER, TicketState.SOLVED): sla.on_solved,
    (TicketState.SOLVED, TicketState.OPEN): sla.on_reopened,
    (TicketState.SOLVED, TicketState.CLOSED): sla.on_closed,
}


def get_ticket(session: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
    """The ticket, optionally row-locked (FOR UPDATE) so concurrent changes queue up."""
    stmt = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    ticket = session.scalars(stmt).one_or_none()
    if ticket is None:
        raise TicketNotFound(ticket_id=ticket_id)
    return ticket


def reopen_window(session: Session) -> timedelta:
    """How long after solving a customer's contact reopens the ticket to its owner
    (``KEFU_REOPEN_WINDOW_DAYS``, default 7 days, carried by the session's schedule)."""
    return timedelta(days=schedule_of(session).reopen_window_days)


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
        hook(session, ticket=ticket, now=now)
    return ticket
