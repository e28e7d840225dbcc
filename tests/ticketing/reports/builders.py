"""Hand-built tickets for the report tests: every row written directly, so each expected figure
can be worked out by hand from what the test says (the facts follow at commit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from ticketing.core.models import (
    Agent,
    Category,
    Channel,
    Customer,
    InboundMessage,
    Priority,
    SlaTimer,
    Survey,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketState,
    TimerKind,
    TimerStatus,
)

H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def ticket(
    s: Session,
    customer: Customer,
    *,
    created: datetime,
    owner: Agent | None = None,
    state: TicketState = TicketState.OPEN,
    channel: Channel = Channel.WIDGET,
    category: Category = Category.LOGISTICS,
    priority: Priority = Priority.NORMAL,
    tier: int = 1,
    conversation_id: str | None = None,
    by_bot: bool = False,
    messages: Sequence[tuple[timedelta, str]] = (),  # (after created, customer|agent|note|bot)
    events: Sequence[tuple[timedelta, str, str | None]] = (),  # (after, kind, to_value)
    timers: Sequence[tuple[TimerKind, TimerStatus, timedelta | None, timedelta | None, bool]] = (),
    reopen_count: int = 0,
) -> Ticket:
    """A ticket with its thread, events and SLA timers; timers are (kind, status, deadline
    after created, completed after created, breached)."""
    t = Ticket(number=f"T{created:%m%d%H%M%S}{customer.id}", customer_id=customer.id,
               channel=channel, conversation_id=conversation_id, category=category,
               priority=priority, tier=tier, state=state, subject="s", language="zh",
               team_id=owner.team_id if owner else None, owner_id=owner.id if owner else None,
               created_at=created, reopen_count=reopen_count, version=1, flags=[])
    s.add(t)
    s.flush()
    s.add(TicketEvent(ticket_id=t.id, at=created, kind="created",
                      actor_type="bot" if by_bot else "agent"))
    for after, author in messages:
        internal = author == "note"
        s.add(TicketMessage(ticket_id=t.id, at=created + after,
                            author_type="agent" if internal else author, body="…",
                            internal=internal))
    for after, kind, to_value in events:
        s.add(TicketEvent(ticket_id=t.id, at=created + after, kind=kind, actor_type="agent",
                          to_value=to_value))
    for generation, (kind, status, deadline, completed, breached) in enumerate(timers, 1):
        s.add(SlaTimer(ticket_id=t.id, kind=kind, generation=generation, status=status,
                       started_at=created,
                       deadline_at=created + deadline if deadline is not None else None,
                       completed_at=created + completed if completed is not None else None,
                       breached_at=created + completed if breached and completed else None))
    s.flush()
    return t


def survey(s: Session, t: Ticket, *, sent: datetime, score: int | None,
           agent: Agent | None, comment: str | None = None) -> Survey:
    row = Survey(ticket_id=t.id, customer_id=t.customer_id, agent_id=agent.id if agent else None,
                 team_id=agent.team_id if agent else None, category=t.category.value,
                 channel=t.channel.value, sent_at=sent, score=score, comment=comment,
                 answered_at=sent + H if score is not None else None)
    s.add(row)
    s.flush()
    return row


def chat(s: Session, conversation_id: str, *times: datetime, channel: str = "widget") -> None:
    """Inbound messages of one conversation at the given moments."""
    for i, at in enumerate(times):
        s.add(InboundMessage(channel=channel, conversation_id=conversation_id,
                             dedupe_key=f"{conversation_id}-{at.timestamp()}-{i}", text="hi",
                             received_at=at))
    s.flush()
