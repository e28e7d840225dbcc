"""Not understood: ask once to rephrase; the second time in a row, a person takes over.

One kind of "not understood" is not: the classifier torn between two intents whose answers
both serve the customer ("when will it arrive?" after an order was tracked reads half as
delivery_time, half as track_order). Then the likelier one is answered, as if the fallback had
not fired, and the fallback count is left alone.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk.events import FollowupAction, SlotSet

from actions import handoff
from actions.base import EventList, KefuAction, Turn

HANDOFF_AFTER = 2  # consecutive fallbacks
# intents answered by actions that serve each other's question, and the action of each
SIBLINGS: dict[frozenset[str], dict[str, str]] = {
    frozenset({"delivery_time", "track_order"}): {"delivery_time": "action_delivery_time",
                                                  "track_order": "action_track_order"},
}
SIBLINGS_CONFIDENCE = 0.5  # the two together must be at least this sure


def sibling_answer(message: dict[str, Any]) -> str | None:
    """The action for a close call between siblings, or None for a real "not understood"."""
    ranked = [r for r in message.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"]
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    actions = SIBLINGS.get(frozenset({first.get("name"), second.get("name")}))
    together = float(first.get("confidence") or 0) + float(second.get("confidence") or 0)
    if actions is None or together < SIBLINGS_CONFIDENCE:
        return None
    return actions[str(first["name"])]


class ActionFallback(KefuAction):
    def name(self) -> str:
        return "action_fallback"

    def act(self, turn: Turn) -> EventList:
        sibling = sibling_answer(turn.tracker.latest_message or {})
        if sibling is not None:
            return [FollowupAction(sibling)]
        count = int(turn.slot("fallback_count") or 0) + 1
        if count >= HANDOFF_AFTER:
            return handoff.hand_off(turn, reason="nlu_fallback")
        turn.utter("utter_default")
        return [SlotSet("fallback_count", float(count))]
