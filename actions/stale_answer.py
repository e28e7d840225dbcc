"""A yes or no that answers no open question: a double-clicked confirm, a button from earlier.

Buttons stay on screen after their turn, and people double-click. When "yes"/"no" (typed or a
``/affirm`` ``/deny`` payload) arrives and no rule gives it a meaning — the form it confirmed
has already finished, the offer it accepted was three turns ago — the assistant must neither
say "I didn't understand" (it was understood) nor run anything a second time. This action says
that the earlier step is already done when the last thing the assistant did was to finish one,
and otherwise invites the next question. It changes nothing: repeating it is harmless.
"""

from __future__ import annotations

from typing import Any

from actions.base import EventList, KefuAction, Turn
from ticketing.core.i18n import Text

# What the assistant did last, when it finished something a late "yes" could be repeating.
FINISHING_ACTIONS = frozenset({
    "action_submit_refund", "action_refund_stop", "action_submit_address",
    "action_keep_address", "action_open_delay_ticket", "action_handoff",
    "action_restock_notice", "action_csat_rate", "action_csat_comment",
    "action_followup_answer",
})
# Run on every turn or by Rasa itself: never "what the assistant did last" for the customer.
BOOKKEEPING_ACTIONS = frozenset({
    "action_listen", "action_identify_customer", "action_session_start",
    "action_extract_slots", "action_deactivate_loop", "action_stale_answer",
})

ALREADY_DONE = Text(
    zh="这一步已经处理好了，不需要再确认。还有其他可以帮您的吗？",
    en="That's already taken care of, nothing more is needed for it. "
       "Is there anything else I can help with?",
)
WHAT_NEXT = Text(
    zh="好的。请问还有什么可以帮您？查订单、退款、物流或商品都可以问我。",
    en="All right. What else can I help you with? I can look up orders, refunds, "
       "deliveries and products.",
)


def previous_action(events: list[dict[str, Any]]) -> str | None:
    """The last action the assistant ran before the customer's latest message."""
    seen_latest_user = False
    for event in reversed(events):
        if event.get("event") == "user":
            if seen_latest_user:
                continue
            seen_latest_user = True
            continue
        if not seen_latest_user or event.get("event") != "action":
            continue
        name = event.get("name")
        if name and name not in BOOKKEEPING_ACTIONS:
            return str(name)
    return None


class ActionStaleAnswer(KefuAction):
    """Acknowledge a yes/no that has nothing left to answer; run nothing again."""

    def name(self) -> str:
        return "action_stale_answer"

    def act(self, turn: Turn) -> EventList:
        done = previous_action(list(turn.tracker.events)) in FINISHING_ACTIONS
        turn.say(ALREADY_DONE if done else WHAT_NEXT)
        return []
