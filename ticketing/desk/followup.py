"""The follow-up (回访) after a ticket is solved: "is it really solved?" (rules §FUP-1).

The worker sends the question once, a day after solving by default, while the ticket is still
solved. The customer's answer is kept on the ticket's :class:`Survey` row; "not solved" reopens
the ticket to its owner, so the same person finishes what they started (首问负责制).

Button payloads the assistant must understand: ``/affirm`` and ``/deny``, the same intents a
typed "yes, solved" or "还没解决" has.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core import errors
from ticketing.core.clock import utcnow
from ticketing.core.i18n import Text
from ticketing.core.models import OutboxMessage, Survey, Ticket, TicketState
from ticketing.desk import csat, lifecycle, tickets

NOT_SOLVED_REASON = "follow-up: not solved"
KIND = "followup"
INTENT = "EXTERNAL_followup"

QUESTION = Text(
    zh="您好，这里是客服回访：工单 {number} 的问题现在解决了吗？",
    en="Hello, this is a follow-up from customer service: is the problem in ticket {number} "
    "solved now?",
)
YES = Text(zh="已解决 ✅", en="Yes, solved ✅")
NO = Text(zh="还没解决 ❌", en="No, not solved ❌")


def buttons(language: str | None) -> list[dict[str, str]]:
    """Yes/no buttons; plain affirm/deny so a tap and a typed answer mean the same."""
    return [
        {"title": YES.get(language), "payload": "/affirm"},
        {"title": NO.get(language), "payload": "/deny"},
    ]


def send_followup(
    session: Session, *, ticket: Ticket, now: datetime | None = None
) -> OutboxMessage | None:
    """Queue the 回访 question "is it really solved?", once per ticket.

    Only while the ticket is still solved: a reopened ticket is being worked on again and a
    closed one is final. Returns None when nothing was sent.
    """
    now = now or utcnow()
    survey = csat.survey_for_ticket(session, ticket_id=ticket.id)
    if survey is None or survey.followup_sent_at is not None:
        return None
    if ticket.state is not TicketState.SOLVED:
        return None
    message = outbox.enqueue(
        session,
        customer_id=ticket.customer_id,
        conversation_id=ticket.conversation_id,
        kind=KIND,
        text=QUESTION.get(ticket.language, number=ticket.number),
        language=ticket.language,
        ticket_id=ticket.id,
        payload=csat.outbox_payload(INTENT, ticket, buttons(ticket.language)),
        now=now,
    )
    survey.followup_sent_at = now
    lifecycle.record_event(session, ticket=ticket, kind="followup_sent", actor_type="system",
                           now=now)
    return message


def answer_followup(
    session: Session,
    *,
    ticket_id: int,
    customer_id: int,
    solved: bool,
    now: datetime | None = None,
) -> Survey:
    """Record the follow-up answer; "not solved" reopens the ticket to its owner.

    The first answer stands: answering again returns the survey unchanged, so a double tap
    never reopens twice. A ticket already reopened (the customer wrote back) is left as is.
    """
    now = now or utcnow()
    if not isinstance(solved, bool):
        raise errors.ValidationError("solved must be true or false")
    survey = csat.customer_survey(session, customer_id, ticket_id, None)
    if survey.followup_solved is not None:
        return survey
    ticket = session.get(Ticket, survey.ticket_id)
    assert ticket is not None  # foreign key
    if not solved and ticket.state is TicketState.SOLVED:
        # first, so a refused reopen leaves the survey unanswered
        tickets.reopen(session, ticket_id=ticket.id, actor_type="customer",
                       actor_id=customer_id, reason=NOT_SOLVED_REASON, now=now)
    survey.followup_solved = solved
    lifecycle.record_event(session, ticket=ticket, kind="followup_answered",
                           actor_type="customer", actor_id=customer_id,
                           data={"solved": solved}, now=now)
    return survey
