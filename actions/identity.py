"""Who is talking and in which language, worked out on every user turn.

``action_identify_customer`` is the custom slot mapping of the ``language``, ``verified`` and
``fallback_count`` slots, so Rasa runs it after each message, before any policy predicts:

- ``language``: the language of the message (any CJK ideograph → zh, Latin letters → en);
  a message with neither (an order number, an emoji, a button) keeps the current language,
  which starts as the channel identity's or the customer's language, else Chinese;
- ``verified``: whether the conversation belongs to a verified customer (the gateway links
  Telegram users and widget visitors); rules and forms branch on it;
- ``fallback_count``: consecutive messages the bot did not understand (reset by any other).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import runtime
from actions.turn import EventList
from ticketing.shop import customers
from ticketing.core.i18n import language_of_text, normalize_language


class ActionIdentifyCustomer(Action):
    def name(self) -> str:
        return "action_identify_customer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        import asyncio

        return await asyncio.to_thread(self.identify, tracker)

    def identify(self, tracker: Tracker) -> EventList:
        message = tracker.latest_message or {}
        external = (message.get("metadata") or {}).get("is_external") or \
            str(message.get("text") or "").startswith("EXTERNAL: ")
        # A triggered intent's text is "EXTERNAL: <name>": it says nothing about the language.
        detected = None if external else language_of_text(message.get("text"),
                                                           names=_product_spans(message))
        current = tracker.get_slot("language")
        verified: bool | None = None
        stored_language: str | None = None
        try:
            backend = runtime.backend()
            with backend.unit_of_work() as session:
                identity = customers.identity_by_conversation(
                    session, conversation_id=tracker.sender_id)
                customer = customers.customer_for_conversation(
                    session, conversation_id=tracker.sender_id)
                verified = customer is not None
                if identity is not None:
                    stored_language = identity.language or (customer.language if customer else None)
                    if detected and identity.language != detected:
                        identity.language = detected  # outbox messages follow the customer
        except Exception:  # the database is down: keep what we knew; actions will apologise
            verified = None
        language = detected or current or normalize_language(stored_language)
        events: EventList = []
        if language != current:
            events.append(SlotSet("language", language))
        if verified is not None and verified != tracker.get_slot("verified"):
            events.append(SlotSet("verified", verified))
        intent = (message.get("intent") or {}).get("name")
        if intent != "nlu_fallback" and tracker.get_slot("fallback_count"):
            events.append(SlotSet("fallback_count", 0.0))
        return events


def _product_spans(message: dict[str, Any]) -> list[str]:
    """The product names NLU found in the message, as written: a product's name never decides
    which language the customer is writing in."""
    text = str(message.get("text") or "")
    spans = []
    for entity in message.get("entities") or []:
        if entity.get("entity") != "product":
            continue
        start, end = entity.get("start"), entity.get("end")
        found = text[start:end] if isinstance(start, int) and isinstance(end, int) else None
        spans.append(found or str(entity.get("value") or ""))
    return spans
