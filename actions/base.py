"""What every Kefu action shares: one transaction, the customer's language, and failure handling.

An action subclasses :class:`KefuAction` and writes ``act(turn)``. The base class runs it in a
worker thread (the database calls are blocking; the action server's event loop is not), inside
one unit of work, and turns failures into answers a customer can read:

- a :class:`~ticketing.core.errors.KefuError` (bad order number, not eligible, ...) is explained
  in the customer's language and changes nothing;
- anything else (database down, timeout, a bug) gets an apology and, when the database can
  still be reached, a ticket with the transcript and a handoff, never a stack trace.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions import runtime
from ticketing.shop import customers
from ticketing.core.errors import KefuError
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import ChannelIdentity, Customer

log = logging.getLogger(__name__)

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
        channel = customers.split_conversation_id(self.conversation_id)[0]
        return channel if channel in ("telegram", "widget") else "widget"

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


class KefuAction(Action, abc.ABC):
    """Base class: implement :meth:`name` and :meth:`act` (abstract, so the action server
    registers only the concrete actions)."""

    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
    def act(self, turn: Turn) -> EventList: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        return await asyncio.to_thread(self.run_sync, dispatcher, tracker, domain)

    def run_sync(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                 domain: dict[str, Any]) -> EventList:
        """Run ``act`` in one transaction; explain domain errors, survive everything else."""
        language = language_of(tracker)
        said = len(dispatcher.messages)
        try:
            backend = runtime.backend()
            with backend.unit_of_work() as session:
                return self.act(Turn(dispatcher, tracker, domain, session, backend, language))
        except KefuError as exc:
            log.info("%s: %s (%s)", self.name(), exc.code, tracker.sender_id)
            dispatcher.utter_message(text=exc.text(language))
            return self.on_refused(exc, tracker)
        except Exception:
            log.exception("action %s failed for %s", self.name(), tracker.sender_id)
            del dispatcher.messages[said:]  # half an answer is worse than an apology
            from actions import failures

            return failures.recover(dispatcher, tracker, language, failed_action=self.name())

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        """Events after a domain refusal (forms reset their slots here). Default: none."""
        return []
