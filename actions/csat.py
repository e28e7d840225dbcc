"""The satisfaction survey (CSAT) in the chat: 1–5 stars once, then an optional comment.

When a ticket is solved the desk queues a survey; the gateway triggers ``EXTERNAL_csat_request``
(or ``EXTERNAL_csat_reminder``) with the ticket number. ``action_csat_request`` asks for the
score with star buttons and remembers the ticket (slot ``csat_ticket``). A rating (button
``/rate{"csat_score": N}`` or typed "五星", "I'd give it a 4") goes to ``action_csat_rate``,
which stores it through ``ticketing.desk.csat`` and sets ``csat_rated``; the rules then open
``csat_comment_form``, whose ``from_text`` slot takes the next message as the comment whatever
the NLU thinks it is. "Skip" (``/deny``) ends the form; ``action_csat_comment`` stores the
comment, thanks the customer and forgets the survey.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.base import EventList, KefuAction, Turn
from ticketing.core import errors
from ticketing.desk import csat
from ticketing.core.i18n import Text
from ticketing.core.models import Survey, Ticket, TicketState

log = logging.getLogger(__name__)

SLOT_TICKET = "csat_ticket"
SLOT_RATED = "csat_rated"
SLOT_SCORE = "csat_stars"
SLOT_COMMENT = "csat_comment"

NOTHING_TO_RATE = Text(
    zh="目前没有需要您评价的服务哦。您的问题处理完成后，我会请您打分。",
    en="There's nothing waiting for your rating right now. When one of your requests has "
       "been resolved, I'll ask you for a score.",
)
PICK_A_SCORE = Text(
    zh="谢谢！请点选您给本次服务（工单 {number}）的星级：",
    en="Thank you! Please pick the stars you'd give our service (ticket {number}):",
)
ASK_AGAIN = Text(zh="请点选 1–5 星：", en="Please pick 1 to 5 stars:")
THANKS_HIGH = Text(zh="感谢您的 {score} 星好评！", en="Thank you for the {score}-star rating!")
THANKS_MID = Text(
    zh="感谢您的评价（{score} 星），我们会继续改进。",
    en="Thanks for your rating ({score} stars). We'll keep improving.",
)
THANKS_LOW = Text(
    zh="感谢您的评价（{score} 星），很抱歉这次没能让您满意。",
    en="Thank you for rating us ({score} stars). We're sorry we let you down this time.",
)
ASK_COMMENT = Text(
    zh="还有什么想对我们说的吗？直接输入就好；不想写可以点“跳过”。",
    en="Anything you'd like to tell us? Just type it, or tap \"Skip\".",
)
ASK_COMMENT_LOW = Text(
    zh="能告诉我们哪里做得不好吗？您的意见会转给服务团队。不想写可以点“跳过”。",
    en="Could you tell us what went wrong? Your words go to the service team. "
       "Or tap \"Skip\".",
)
SKIP = Text(zh="跳过", en="Skip")
COMMENT_THANKS = Text(
    zh="收到，感谢您的宝贵意见！还有其他可以帮您的吗？",
    en="Got it, thank you for your feedback! Anything else I can help with?",
)
SKIPPED = Text(
    zh="好的，再次感谢您的评价！还有其他可以帮您的吗？",
    en="All right, thanks again for rating us! Anything else I can help with?",
)

# Answering "any comment?" with a refusal ("no", "nothing more", "that's all", "没有了", a thank
# you, a goodbye) is read by the NLU's intent, not matched against a list of phrasings; the
# button's own words are the only literal ones.
DECLINING_INTENTS = frozenset({"deny", "goodbye", "thank"})
DECLINE_CONFIDENCE = 0.5
FALLBACK_DECLINE_CONFIDENCE = 0.3  # the classifier's own top intent when the fallback took over
DECLINE_MAX_WORDS = 3.0  # "no, the agent was rude" says more than no: it is a comment
SKIP_LABELS = frozenset({"skip", "跳过"})
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
# Score words the entity extractor may leave unnormalised.
SCORE_WORDS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "one": 1, "two": 2,
               "three": 3, "four": 4, "five": 5}


# --- finding the survey the customer is answering ----------------------------------------
def conversation_customer_id(turn: Turn) -> int | None:
    """Whose surveys this conversation may answer: the identity's customer, guest or verified.

    A guest who asked for a person owns that ticket (and its survey) without being verified;
    rating it shows nothing private, so verification is not required here.
    """
    identity = turn.identity
    return identity.customer_id if identity is not None else None


def _may_answer(turn: Turn, survey: Survey, ticket: Ticket, customer_id: int | None) -> bool:
    """The survey's customer, or the very conversation the ticket came from (a guest who
    verified later talks as another customer record but is the same person)."""
    return survey.customer_id == customer_id or ticket.conversation_id == turn.conversation_id


def survey_by_number(turn: Turn, number: str | None) -> Survey | None:
    """The survey of ticket ``number`` if this conversation may answer it, else None."""
    if not number or not str(number).strip():
        return None
    row = turn.session.execute(
        select(Survey, Ticket).join(Ticket, Ticket.id == Survey.ticket_id)
        .where(Ticket.number == str(number).strip())
    ).first()
    if row is None:
        return None
    survey, ticket = row
    if not _may_answer(turn, survey, ticket, conversation_customer_id(turn)):
        log.warning("survey for %s asked in foreign conversation %s", number, turn.conversation_id)
        return None
    return survey


def latest_survey(turn: Turn) -> Survey | None:
    """The survey of the customer's most recently solved ticket (a rating out of the blue)."""
    customer_id = conversation_customer_id(turn)
    if customer_id is None:
        return None
    return turn.session.scalars(
        select(Survey).join(Ticket, Ticket.id == Survey.ticket_id)
        .where(Survey.customer_id == customer_id,
               Ticket.state.in_((TicketState.SOLVED, TicketState.CLOSED)))
        .order_by(Survey.sent_at.desc(), Survey.id.desc()).limit(1)
    ).first()


def ticket_number_of(turn: Turn, survey: Survey) -> str:
    ticket = turn.session.get(Ticket, survey.ticket_id)
    assert ticket is not None  # foreign key
    return ticket.number


def entity_value(turn: Turn, name: str) -> Any:
    """The first value of entity ``name`` in the latest message, or None."""
    for entity in (turn.tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == name and entity.get("value") not in (None, ""):
            return entity["value"]
    return None


def score_of(value: Any) -> Any:
    """Normalise a spoken score ("五", "four", "5") for ``csat.parse_score``; else as given."""
    if isinstance(value, str):
        word = value.strip().lower()
        return SCORE_WORDS.get(word, word)
    return value


# --- actions -------------------------------------------------------------------------------
class ActionCsatRequest(KefuAction):
    """EXTERNAL_csat_request / _reminder: ask for the stars, once per unanswered survey."""

    def name(self) -> str:
        return "action_csat_request"

    def act(self, turn: Turn) -> EventList:
        number = entity_value(turn, "ticket_number") or turn.slot("ticket_number")
        survey = survey_by_number(turn, number)
        if survey is None or survey.score is not None:
            # an unknown ticket, or already rated (a duplicate delivery): stay quiet
            log.info("no survey to ask for %r in %s", number, turn.conversation_id)
            return []
        number = ticket_number_of(turn, survey)
        intent = (turn.tracker.latest_message.get("intent") or {}).get("name")
        text = csat.REMINDER_TEXT if intent == csat.INTENT_REMINDER else csat.SURVEY_TEXT
        turn.say(text, buttons=csat.rating_buttons(), number=number)
        return [SlotSet(SLOT_TICKET, number), SlotSet(SLOT_RATED, None)]


class ActionCsatRate(KefuAction):
    """A rating: store it once; ``csat_rated`` tells the rules whether to ask for a comment."""

    def name(self) -> str:
        return "action_csat_rate"

    def act(self, turn: Turn) -> EventList:
        survey = survey_by_number(turn, turn.slot(SLOT_TICKET)) or latest_survey(turn)
        if survey is None:
            turn.say(NOTHING_TO_RATE)
            return [SlotSet(SLOT_RATED, False), SlotSet(SLOT_TICKET, None)]
        number = ticket_number_of(turn, survey)
        if survey.score is not None:
            turn.say(errors.AlreadyAnswered().text(turn.language))
            return [SlotSet(SLOT_RATED, False), SlotSet(SLOT_TICKET, None)]
        raw = entity_value(turn, "csat_score")
        if raw is None:  # "满意", "very satisfied": glad to hear it, but how many stars?
            turn.say(PICK_A_SCORE, buttons=csat.rating_buttons(), number=number)
            return [SlotSet(SLOT_RATED, False), SlotSet(SLOT_TICKET, number)]
        try:
            csat.record_score(turn.session, customer_id=survey.customer_id,
                              score=score_of(raw), ticket_id=survey.ticket_id)
        except errors.InvalidScore as exc:
            turn.say(exc.text(turn.language))
            turn.say(ASK_AGAIN, buttons=csat.rating_buttons())
            return [SlotSet(SLOT_RATED, False), SlotSet(SLOT_TICKET, number)]
        score = survey.score
        turn.say(THANKS_HIGH if score >= 4 else THANKS_MID if score == 3 else THANKS_LOW,
                 score=score)
        return [SlotSet(SLOT_RATED, True), SlotSet(SLOT_TICKET, number),
                SlotSet(SLOT_SCORE, float(score))]


class ActionAskCsatComment(KefuAction):
    """The comment form's question, with a Skip button; a low score asks what went wrong."""

    def name(self) -> str:
        return "action_ask_csat_comment"

    def act(self, turn: Turn) -> EventList:
        score = turn.slot(SLOT_SCORE)
        low = score is not None and float(score) <= 2
        turn.say(ASK_COMMENT_LOW if low else ASK_COMMENT,
                 buttons=[{"title": SKIP.get(turn.language), "payload": "/deny"}])
        return []


def is_skip(comment: str | None, message: dict[str, Any] | None = None) -> bool:
    """No comment: nothing written, a button payload, only emoji or punctuation, the Skip
    button's words typed, or a short message whose intent is a refusal, thanks or goodbye
    (``message``: the NLU's reading of the comment, Rasa's ``latest_message``)."""
    text = (comment or "").strip()
    if not text or text.startswith("/"):
        return True
    if not any(ch.isalnum() for ch in text):  # 👍, 🙏, "..." — no words to keep
        return True
    if text.lower().strip(" .!。！") in SKIP_LABELS:
        return True
    intent = (message or {}).get("intent") or {}
    floor = DECLINE_CONFIDENCE
    if intent.get("name") == "nlu_fallback":  # unsure between, say, thank and deny: both decline
        ranked = [r for r in (message or {}).get("intent_ranking") or []
                  if r.get("name") != "nlu_fallback"]
        intent, floor = (ranked[0] if ranked else {}), FALLBACK_DECLINE_CONFIDENCE
    if intent.get("name") not in DECLINING_INTENTS or \
            float(intent.get("confidence") or 0.0) < floor:
        return False
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return len(_LATIN_WORD.findall(text)) + han / 2 <= DECLINE_MAX_WORDS


class ActionCsatComment(KefuAction):
    """After the comment form: store the comment (if any), thank, forget the survey."""

    def name(self) -> str:
        return "action_csat_comment"

    def act(self, turn: Turn) -> EventList:
        comment = turn.slot(SLOT_COMMENT)
        survey = survey_by_number(turn, turn.slot(SLOT_TICKET))
        done = [SlotSet(SLOT_COMMENT, None), SlotSet(SLOT_TICKET, None),
                SlotSet(SLOT_RATED, None), SlotSet(SLOT_SCORE, None)]
        latest = turn.tracker.latest_message or {}
        typed = latest if str(latest.get("text") or "").strip() == str(comment or "").strip() \
            else None  # the NLU's reading belongs to the comment only if it is that message
        if is_skip(comment, typed) or survey is None:
            turn.say(SKIPPED)
            return done
        try:
            csat.record_comment(turn.session, customer_id=survey.customer_id,
                                comment=str(comment).strip()[:csat.COMMENT_MAX_CHARS],
                                ticket_id=survey.ticket_id)
        except errors.AlreadyAnswered:
            pass  # a comment is kept once; a second one is still welcome thanks
        turn.say(COMMENT_THANKS)
        return done

    def on_refused(self, error: errors.KefuError, tracker: Any) -> EventList:
        return [SlotSet(SLOT_COMMENT, None), SlotSet(SLOT_TICKET, None),
                SlotSet(SLOT_RATED, None), SlotSet(SLOT_SCORE, None)]
