"""One action run as the actions see it: the tracker, where to speak, the open session.

The bottom of the ``actions`` package: it imports no other action module but ``runtime``, so
everything above (the handoff, failure recovery, the base class, the feature actions) can use
it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions import runtime
from ticketing.core import local_time
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import ChannelIdentity, Customer
from ticketing.desk import handoffs
from ticketing.shop import customers

EventList = list[dict[str, Any]]


def language_of(tracker: Tracker) -> str:
    """The language to answer in: the ``language`` slot, set each turn by the identify action."""
    return normalize_language(tracker.get_slot("language") or "zh")


@dataclass
class Turn:
    """One action run: the tracker, where to speak, and the open database session."""

    dispatcher: CollectingDispatcher
    tracker: Tracker
    domain: dict[str, Any]
    session: Session
    backend: runtime.Backend
    language: str
    _identity: ChannelIdentity | None = field(default=None, init=False)
    _customer: Customer | None = field(default=None, init=False)
    _looked_up: bool = field(default=False, init=False)

    @property
    def conversation_id(self) -> str:
        return self.tracker.sender_id

    @property
    def channel(self) -> str:
        return handoffs.ticket_channel(self.conversation_id).value

    def _lookup(self) -> None:
        if not self._looked_up:
            self._identity = customers.identity_by_conversation(
                self.session, conversation_id=self.conversation_id)
            self._customer = customers.customer_for_conversation(
                self.session, conversation_id=self.conversation_id)
            self._looked_up = True

    @property
    def identity(self) -> ChannelIdentity | None:
        self._lookup()
        return self._identity

    @property
    def customer(self) -> Customer | None:
        """The verified customer, or None: an anonymous visitor never sees an order."""
        self._lookup()
        return self._customer

    def require_customer(self) -> Customer | None:
        """The verified customer; else explain how to verify and return None."""
        customer = self.customer
        if customer is None:
            self.utter("utter_verify_first")
        return customer

    def say(self, text: Text | str, *, buttons: list[dict[str, str]] | None = None,
            **values: object) -> None:
        """Say a bilingual text (or an already localised string) in the customer's language."""
        body = text.get(self.language, **values) if isinstance(text, Text) else text
        self.dispatcher.utter_message(text=body, buttons=buttons or [])

    def utter(self, response: str, **kwargs: Any) -> None:
        """Say a domain response by name; Rasa picks the zh/en variation from the slot."""
        self.dispatcher.utter_message(response=response, **kwargs)

    def slot(self, name: str) -> Any:
        return self.tracker.get_slot(name)

    def short_moment(self, moment: datetime | None) -> str:
        """``12月3日 14:05`` / ``3 Dec 14:05`` in the shop's zone; ``—`` when there is none."""
        if moment is None:
            return "—"
        return local_time.short_moment(moment, language=self.language,
                                       timezone=self.backend.timezone)
