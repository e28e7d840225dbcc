"""The follow-up (回访, rules §FUP-1): "is your problem really solved?" some time after the solve.

The worker queues it; the gateway triggers ``EXTERNAL_followup`` with the ticket number.
``action_followup_ask`` asks with two buttons that send ``/affirm`` and ``/deny``, the same
intents a typed "yes, solved" or "还没解决" gets, and remembers the ticket (slot
``followup_ticket``). The rules take the answer only right after the question, so a "no" to
something else later can never reopen a ticket. Solved: recorded, thanks. Not solved: the
ticket is reopened to its owner (``followup.answer_followup``) and the conversation is handed to
that owner again, with the handoff marker and a pause.
"""

from __future__ import annotations

import logging

from rasa_sdk.events import SlotSet

from actions import handoff
from actions.base import EventList, KefuAction, Turn
from actions.csat import survey_by_number, ticket_number_of
from ticketing.core import errors
from ticketing.desk import followup, tickets
from ticketing.core.i18n import Text
from ticketing.core.models import Order, Survey, Ticket

log = logging.getLogger(__name__)

SLOT_TICKET = "followup_ticket"
REASON = "followup_not_solved"

SOLVED_THANKS = Text(
    zh="太好了，感谢您的确认！以后有任何问题随时找我～",
    en="Great, thanks for letting us know! I'm here whenever you need anything.",
)
REOPENED = Text(
    zh="抱歉问题还没解决。工单 {number} 已重新打开，并转回之前负责的客服，会在 {deadline} 前"
       "回复您（{within}内）。在此期间您在这里发的消息都会直接转给该客服。",
    en="Sorry it still isn't solved. I've reopened ticket {number} and passed it back to the "
       "agent who handled it; you'll get a reply by {deadline} (within {within}). Anything "
       "you write here now goes straight to that agent.",
)


class ActionFollowupAsk(KefuAction):
    """EXTERNAL_followup: ask whether the ticket's problem is really solved, once."""

    def name(self) -> str:
        return "action_followup_ask"

    def act(self, turn: Turn) -> EventList:
        number = (next((e.get("value") for e in turn.tracker.latest_message.get("entities") or []
                        if e.get("entity") == "ticket_number"), None)
                  or turn.slot("ticket_number"))
        survey = survey_by_number(turn, number)
        if survey is None or survey.followup_solved is not None:
            log.info("no follow-up to ask for %r in %s", number, turn.conversation_id)
            return [SlotSet(SLOT_TICKET, None)]
        number = ticket_number_of(turn, survey)
        turn.say(followup.QUESTION, buttons=followup.buttons(turn.language), number=number)
        return [SlotSet(SLOT_TICKET, number)]


class ActionFollowupAnswer(KefuAction):
    """affirm/deny right after the follow-up question: record it; "not solved" hands off."""

    def name(self) -> str:
        return "action_followup_answer"

    def act(self, turn: Turn) -> EventList:
        survey = survey_by_number(turn, turn.slot(SLOT_TICKET))
        forget = [SlotSet(SLOT_TICKET, None)]
        if survey is None:  # the question was not asked (nothing pending): nothing to record
            turn.utter("utter_anything_else")
            return forget
        intent = (turn.tracker.latest_message.get("intent") or {}).get("name")
        if intent == "affirm":
            followup.answer_followup(turn.session, ticket_id=survey.ticket_id,
                                 customer_id=survey.customer_id, solved=True)
            turn.say(SOLVED_THANKS)
            return forget
        return forget + self.not_solved(turn, survey)

    def not_solved(self, turn: Turn, survey: Survey) -> EventList:
        """Reopen to the owner and hand the conversation back; a new ticket if it cannot be."""
        ticket = turn.session.get(Ticket, survey.ticket_id)
        assert ticket is not None  # foreign key
        try:
            followup.answer_followup(turn.session, ticket_id=ticket.id,
                                 customer_id=survey.customer_id, solved=False)
        except errors.IllegalTransition:
            # solved too long ago for the customer to reopen it: a fresh ticket instead
            return self.new_ticket(turn, ticket)
        if ticket.state not in tickets.ACTIVE_STATES:
            # closed meanwhile, or answered "solved" before: the owner cannot take it back
            return self.new_ticket(turn, ticket)
        words = (turn.tracker.latest_message.get("text") or "").strip()
        if words and not words.startswith("/"):  # typed, e.g. "还没解决，耳机还是连不上"
            tickets.add_customer_message(turn.session, ticket_id=ticket.id, body=words[:4000])
        return handoff.hand_off_to_ticket(turn, ticket=ticket, reason=REASON, text=REOPENED)

    @staticmethod
    def new_ticket(turn: Turn, old: Ticket) -> EventList:
        order = turn.session.get(Order, old.order_id) if old.order_id is not None else None
        return handoff.hand_off(turn, reason=REASON, category=old.category,
                                order_number=order.number if order is not None else None)
