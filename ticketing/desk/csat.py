"""In-chat satisfaction survey (CSAT) after a ticket is solved.

Rules §CSAT-1 asks for the customer's satisfaction on every consultation. One :class:`Survey` row
per ticket carries the 1–5 score with an optional comment (and the follow-up's answer, see
:mod:`ticketing.desk.followup`). The survey is credited to the ticket's owner and the owner's
team *when it is sent*, so a later transfer cannot move good or bad ratings between agents.

Messages go through the outbox with the Rasa intent to trigger (``EXTERNAL_…``) and the
buttons, so the gateway can either trigger the intent or render the text and buttons itself.
Button payloads the assistant must understand: ``/rate{"csat_score": N}``, N = 1..5.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core import errors
from ticketing.core.clock import utcnow
from ticketing.core.i18n import Text
from ticketing.core.models import Agent, OutboxMessage, Survey, Ticket, TicketEvent, TicketState

COMMENT_MAX_CHARS = 1000

KIND_REQUEST = "csat_request"
KIND_REMINDER = "csat_reminder"

INTENT_REQUEST = "EXTERNAL_csat_request"
INTENT_REMINDER = "EXTERNAL_csat_reminder"

SURVEY_TEXT = Text(
    zh="您的问题（工单 {number}）已处理完毕。请为本次服务打分：1 星最不满意，5 星非常满意。",
    en="Your request (ticket {number}) has been resolved. How would you rate our service? "
    "1 star = very unhappy, 5 stars = very happy.",
)
REMINDER_TEXT = Text(
    zh="打扰一下：工单 {number} 的服务评价还在等您，点一下星星就好，谢谢！",
    en="A quick reminder: we would love your rating for ticket {number}. "
    "One tap on the stars is enough. Thank you!",
)
COMMENT_TOO_LONG = "comment longer than {limit} characters"


def rating_buttons() -> list[dict[str, str]]:
    """The five star buttons; titles are language-neutral."""
    return [
        {"title": f"{n} " + "⭐" * n, "payload": '/rate{"csat_score": %d}' % n}
        for n in range(1, 6)
    ]


# --- sending ---------------------------------------------------------------------------------
def on_ticket_solved(session: Session, *, ticket: Ticket, now: datetime | None = None) -> Survey:
    """Create the ticket's one survey and queue the rating request.

    Called by ``tickets.solve``. A re-solve after a reopen finds the existing survey and
    returns it untouched: no second request, no second credit.
    """
    now = now or utcnow()
    existing = survey_for_ticket(session, ticket_id=ticket.id)
    if existing is not None:
        return existing
    team_id = ticket.team_id
    if ticket.owner_id is not None:
        owner_team = session.scalar(select(Agent.team_id).where(Agent.id == ticket.owner_id))
        team_id = owner_team if owner_team is not None else ticket.team_id
    survey = Survey(
        ticket_id=ticket.id,
        customer_id=ticket.customer_id,
        agent_id=ticket.owner_id,
        team_id=team_id,
        category=_value(ticket.category),
        channel=_value(ticket.channel),
        sent_at=now,
    )
    try:
        # a savepoint, so a concurrent solve losing the unique(ticket_id) race leaves the
        # caller's transaction usable
        with session.begin_nested():
            session.add(survey)
            session.flush()
    except IntegrityError:
        winner = survey_for_ticket(session, ticket_id=ticket.id)
        if winner is None:
            raise
        return winner
    outbox.enqueue(
        session,
        customer_id=ticket.customer_id,
        conversation_id=ticket.conversation_id,
        kind=KIND_REQUEST,
        text=SURVEY_TEXT.get(ticket.language, number=ticket.number),
        language=ticket.language,
        ticket_id=ticket.id,
        payload=outbox_payload(INTENT_REQUEST, ticket, rating_buttons()),
        now=now,
    )
    _event(session, ticket.id, "csat_sent", "system", None, now, data={"survey_id": survey.id})
    return survey


def send_reminder(
    session: Session, *, ticket: Ticket, now: datetime | None = None
) -> OutboxMessage | None:
    """Remind the customer of an unanswered survey, at most once per ticket.

    Returns None (and sends nothing) when there is no survey, it is answered, a reminder was
    already queued, or the ticket was reopened (asking for a rating of unfinished work is rude).
    """
    now = now or utcnow()
    survey = survey_for_ticket(session, ticket_id=ticket.id)
    if survey is None or survey.score is not None:
        return None
    if ticket.state not in (TicketState.SOLVED, TicketState.CLOSED):
        return None
    already = session.scalar(
        select(OutboxMessage.id)
        .where(OutboxMessage.ticket_id == ticket.id, OutboxMessage.kind == KIND_REMINDER)
        .limit(1)
    )
    if already is not None:
        return None
    return outbox.enqueue(
        session,
        customer_id=ticket.customer_id,
        conversation_id=ticket.conversation_id,
        kind=KIND_REMINDER,
        text=REMINDER_TEXT.get(ticket.language, number=ticket.number),
        language=ticket.language,
        ticket_id=ticket.id,
        payload=outbox_payload(INTENT_REMINDER, ticket, rating_buttons()),
        now=now,
    )


# --- answers ---------------------------------------------------------------------------------
def record_score(
    session: Session,
    *,
    customer_id: int,
    score: object,
    ticket_id: int | None = None,
    ticket_number: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> Survey:
    """Store the customer's 1–5 rating, once.

    ``score`` may arrive from a Rasa slot as "5" or 5.0; anything that is not exactly a whole
    number 1–5 is :class:`~ticketing.core.errors.InvalidScore`. A second rating is refused with
    :class:`~ticketing.core.errors.AlreadyAnswered` and changes nothing.
    """
    now = now or utcnow()
    value = parse_score(score)
    text = clean_comment(comment)
    survey = customer_survey(session, customer_id, ticket_id, ticket_number)
    if survey.score is not None:
        raise errors.AlreadyAnswered(survey_id=survey.id)
    survey.score = value
    survey.answered_at = now
    if text is not None:
        survey.comment = text
    _event(session, survey.ticket_id, "csat_rated", "customer", customer_id, now,
           data={"score": value})
    return survey


def record_comment(
    session: Session,
    *,
    customer_id: int,
    comment: str,
    ticket_id: int | None = None,
    ticket_number: str | None = None,
    now: datetime | None = None,
) -> Survey:
    """Add the optional free-text comment after the rating; a comment is kept once, unedited."""
    now = now or utcnow()
    text = clean_comment(comment)
    if text is None:
        raise errors.ValidationError("empty comment")
    survey = customer_survey(session, customer_id, ticket_id, ticket_number)
    if survey.comment is not None:
        raise errors.AlreadyAnswered(survey_id=survey.id)
    survey.comment = text
    if survey.answered_at is None:
        survey.answered_at = now
    _event(session, survey.ticket_id, "csat_commented", "customer", customer_id, now)
    return survey


# --- lookups and validation ------------------------------------------------------------------
def survey_for_ticket(session: Session, *, ticket_id: int) -> Survey | None:
    return session.scalar(select(Survey).where(Survey.ticket_id == ticket_id))


def parse_score(score: object) -> int:
    """A whole number 1–5 from an int, an integral float or a digit string; else InvalidScore."""
    value: Any = score
    if isinstance(value, bool) or value is None:
        raise errors.InvalidScore(score=repr(score))
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit()):
            raise errors.InvalidScore(score=repr(score))
        value = int(value)
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise errors.InvalidScore(score=repr(score))
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise errors.InvalidScore(score=repr(score))
    return value


def clean_comment(comment: str | None) -> str | None:
    """Stripped comment, None when blank; over :data:`COMMENT_MAX_CHARS` is refused."""
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise errors.ValidationError("comment must be text")
    text = comment.strip()
    if len(text) > COMMENT_MAX_CHARS:
        raise errors.ValidationError(COMMENT_TOO_LONG.format(limit=COMMENT_MAX_CHARS))
    return text or None


def customer_survey(
    session: Session, customer_id: int, ticket_id: int | None, ticket_number: str | None
) -> Survey:
    """The survey of one of the customer's tickets; another customer's is not found
    (:class:`~ticketing.core.errors.SurveyNotFound`)."""
    query = select(Survey)
    if ticket_id is not None:
        query = query.where(Survey.ticket_id == ticket_id)
    elif ticket_number is not None and ticket_number.strip():
        query = query.join(Ticket, Ticket.id == Survey.ticket_id).where(
            Ticket.number == ticket_number.strip()
        )
    else:
        raise errors.SurveyNotFound("ticket_id or ticket_number is required")
    survey = session.scalar(query)
    if survey is None or survey.customer_id != customer_id:
        raise errors.SurveyNotFound()
    return survey


def outbox_payload(intent: str, ticket: Ticket, buttons: list[dict[str, str]]) -> dict[str, object]:
    """What the gateway needs to run the assistant's intent, or to render the buttons itself."""
    return {"intent": intent, "entities": {"ticket_number": ticket.number}, "buttons": buttons}


def _event(
    session: Session,
    ticket_id: int,
    kind: str,
    actor_type: str,
    actor_id: int | None,
    now: datetime,
    data: dict[str, object] | None = None,
) -> None:
    """A line in the ticket's history, so the desk shows the survey next to the transcript."""
    session.add(TicketEvent(ticket_id=ticket_id, at=now, kind=kind, actor_type=actor_type,
                            actor_id=actor_id, data=data or {}))


def _value(member: object) -> str:
    return str(getattr(member, "value", member))
