"""Not understood: ask once to rephrase; the second time in a row, a person takes over."""

from __future__ import annotations

from rasa_sdk.events import SlotSet

from actions import handoff
from actions.base import EventList, KefuAction, Turn

HANDOFF_AFTER = 2  # consecutive fallbacks


class ActionFallback(KefuAction):
    def name(self) -> str:
        return "action_fallback"

    def act(self, turn: Turn) -> EventList:
        count = int(turn.slot("fallback_count") or 0) + 1
        if count >= HANDOFF_AFTER:
            return handoff.hand_off(turn, reason="nlu_fallback")
        turn.utter("utter_default")
        return [SlotSet("fallback_count", float(count))]
