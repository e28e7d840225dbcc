"""shipping_problem, payment_issue, complaint, human_handoff: the customer wants a person."""

from __future__ import annotations

from actions.base import EventList, KefuAction, Turn
from actions.handoff import SUBJECTS, hand_off
from ticketing.core.models import Category
from ticketing.desk import triage

# Which ticket category an intent starts with; text-based triage refines "other".
INTENT_CATEGORY: dict[str, Category | None] = {
    "shipping_problem": Category.LOGISTICS,
    "payment_issue": Category.PAYMENT,
    "complaint": None,
    "human_handoff": None,
    "nlu_fallback": None,
    "request_refund": Category.REFUND,
    "cancel_order": Category.ORDER,
    "change_shipping_address": Category.ORDER,
    "track_order": Category.LOGISTICS,
    "delivery_time": Category.LOGISTICS,
}


class ActionHandoff(KefuAction):
    """A person takes over: a ticket (or the live one), the promise, the marker, a pause."""

    def name(self) -> str:
        return "action_handoff"

    def act(self, turn: Turn) -> EventList:
        intent = (turn.tracker.latest_message.get("intent") or {}).get("name") or "human_handoff"
        reason = intent if intent in SUBJECTS else "human_handoff"
        category = INTENT_CATEGORY.get(intent)
        if intent == "shipping_problem" and \
                triage.classify(turn.tracker.latest_message.get("text")) is Category.QUALITY:
            category = Category.QUALITY  # broken, wrong or missing item: after-sales, not transit
        return hand_off(turn, reason=reason, category=category,
                        order_number=turn.slot("order_id"))
