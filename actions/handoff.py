"""Handing a conversation to a person: a ticket with the transcript, a promise, a marker, silence.

What the bot cannot finish becomes a ticket (rules §REC-1, §LOOP-1). The ticket and the handoff itself
come from :func:`ticketing.desk.handoffs.open_for_conversation` (the one place that opens a
ticket for a conversation and marks it handed off); this module adds what is Rasa's: the
transcript from the tracker, the customer is told the ticket number and by when a person
answers (from the SLA policy), the bot's last message carries the handoff marker (a ``custom``
payload, ``ticketing.desk.handoffs.HANDOFF_MARKER_KEY``) that tells the gateway to route the
conversation to the ticket's owner, and the conversation is paused, so the assistant stays
silent until the desk hands it back (a ``resume`` event).

Below the base class on purpose (it imports only :mod:`actions.turn`): failure recovery
(:mod:`actions.failures`) hands off too. The action a customer triggers by asking for a person
is :class:`actions.human_handoff.ActionHandoff`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SlotSet

from actions.turn import EventList, Turn
from ticketing.core.clock import utcnow
from ticketing.core.errors import KefuError
from ticketing.core.i18n import Text
from ticketing.core.local_time import duration_words
from ticketing.core.models import Category, Customer, Ticket
from ticketing.desk import handoffs, sla, triage
from ticketing.shop import orders

TRANSCRIPT_TURNS = 60

CREATED = Text(
    zh="已为您转接人工客服，工单号 {number}。客服会在 {deadline} 前回复您（{within}内）。"
       "在此期间您在这里发的消息都会直接转给负责的客服。",
    en="I've passed this to our service team as ticket {number}. An agent will reply by "
       "{deadline} (within {within}). Anything you write here now goes straight to the "
       "agent who owns your ticket.",
)
EMPATHY = Text(
    zh="非常抱歉给您带来这么不好的体验，您的心情我完全理解。这件事我已经交给专人负责，"
       "会一直跟到解决为止。",
    en="I'm really sorry about this, and I understand how frustrating it is. I've put it in "
       "the hands of a person who will own it until it is sorted out.",
)
APPENDED = Text(
    zh="这个问题已经有工单 {number} 在处理中，我已把您这次的消息补充进去并通知了负责的客服，"
       "会在 {deadline} 前回复您。",
    en="There is already a ticket for this, {number}. I've added your message to it and told "
       "the agent who owns it; you'll get a reply by {deadline}.",
)

SUBJECTS = {
    "shipping_problem": Text("物流/商品问题", "Delivery or item problem"),
    "parcel_delayed": Text("包裹延误", "Parcel delayed"),
    "payment_issue": Text("支付问题", "Payment problem"),
    "complaint": Text("投诉", "Complaint"),
    "human_handoff": Text("转人工", "Asked for an agent"),
    "nlu_fallback": Text("机器人未能理解", "The bot did not understand"),
    "action_failed": Text("机器人处理失败", "The bot failed to handle a request"),
}
SUBJECT_DEFAULT = Text("客户咨询", "Customer enquiry")


def transcript_from(tracker: Tracker, limit: int = TRANSCRIPT_TURNS) -> list[dict[str, Any]]:
    """The conversation as ticket turns: what the customer wrote and what the bot said.

    Button payloads ("/rate{...}") are kept out: they are clicks, not words.
    """
    turns: list[dict[str, Any]] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind not in ("user", "bot"):
            continue
        body = (event.get("text") or "").strip()
        if not body or (kind == "user" and body.startswith("/")):
            continue
        stamp = event.get("timestamp")
        at = datetime.fromtimestamp(stamp, tz=ZoneInfo("UTC")) if stamp else utcnow()
        turns.append({"author_type": "customer" if kind == "user" else "bot",
                      "body": body[:4000], "at": at})
    return turns[-limit:]


def customer_words(transcript: list[dict[str, Any]], last: int = 6) -> str:
    """The customer's last messages, for triage (category, urgency, threats)."""
    bodies = [t["body"] for t in transcript if t["author_type"] == "customer"]
    return "\n".join(bodies[-last:])[-2000:]


def paused_events(ticket: Ticket) -> EventList:
    """The bot's last events before a person takes over.

    The ``action_listen`` makes the next user turn (the desk's ``EXTERNAL_csat_request`` after
    the hand-back) look like any other to the rules, which all start after a listen; the
    ``pause`` keeps Rasa silent until the desk appends a ``resume``.
    """
    return [SlotSet("ticket_number", ticket.number), SlotSet("fallback_count", 0.0),
            ActionExecuted("action_listen"), ConversationPaused()]


def hand_off(turn: Turn, *, reason: str, category: Category | None = None,
             order_number: str | None = None) -> EventList:
    """Open (or join) the ticket, tell the customer, mark the handoff and pause the bot."""
    now = utcnow()
    transcript = transcript_from(turn.tracker)
    words = customer_words(transcript)
    subject = SUBJECTS.get(reason, SUBJECT_DEFAULT)
    ticket = handoffs.open_for_conversation(
        turn.session, conversation_id=turn.conversation_id, language=turn.language,
        subject=subject, text=words or subject.get(turn.language),
        category=_refined(category, words), order_id=_order_id(turn, order_number),
        transcript=transcript, now=now)
    _announce(turn, ticket, text=CREATED if ticket.created_at >= now else APPENDED, reason=reason)
    return paused_events(ticket)


def hand_off_to_ticket(turn: Turn, *, ticket: Ticket, reason: str, text: Text) -> EventList:
    """Hand the conversation to the people of an existing live ticket again (e.g. reopened).

    Unlike :func:`hand_off` no ticket is opened or joined: the caller already knows which one
    (a follow-up answered "not solved" reopened it to its owner). ``text`` may use
    ``{number}``, ``{deadline}`` and ``{within}``. Same marker and pause as a new handoff.
    """
    handoffs.mark(turn.session, conversation_id=turn.conversation_id, ticket_id=ticket.id,
                  now=utcnow())
    _announce(turn, ticket, text=text, reason=reason)
    return paused_events(ticket)


def _refined(category: Category | None, words: str) -> Category:
    """The category the intent gave; none or "other" is refined by what the customer wrote."""
    if category is not None and category is not Category.OTHER:
        return category
    guessed = triage.classify(words)
    return guessed if guessed is not Category.OTHER else (category or Category.OTHER)


def _order_id(turn: Turn, order_number: str | None) -> int | None:
    """The verified customer's order the handoff is about, if the number is theirs."""
    customer = turn.customer
    if not order_number or customer is None:
        return None
    try:
        return orders.get_order(turn.session, customer_id=customer.id,
                                number=orders.parse_order_number(order_number)).id
    except KefuError:
        return None  # a wrong number must not stop the customer reaching a person


def _announce(turn: Turn, ticket: Ticket, *, text: Text, reason: str) -> None:
    """Tell the customer the ticket number and reply-by time, then emit the handoff marker."""
    customer = turn.session.get(Customer, ticket.customer_id)
    deadline = sla.next_deadline(turn.session, ticket=ticket)
    budget = sla.policy_in(turn.session, priority=ticket.priority,
                           segment=customer.segment if customer is not None else None)
    if reason == "complaint" or triage.is_upset(customer_words(transcript_from(turn.tracker))):
        turn.say(EMPATHY)  # an apology and acknowledgement before the process
    turn.say(text, number=ticket.number, deadline=turn.short_moment(deadline),
             within=duration_words(budget.first_response, language=turn.language))
    turn.dispatcher.utter_message(
        json_message=handoffs.handoff_marker(ticket, reason=reason, language=turn.language))
