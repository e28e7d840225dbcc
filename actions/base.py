"""What every Kefu action shares: one transaction, the customer's language, and failure handling.

An action subclasses :class:`KefuAction` and writes ``act(turn)``. The base class runs it in a
worker thread (the database calls are blocking; the action server's event loop is not), inside
one unit of work, and turns failures into answers a customer can read:

- a :class:`~ticketing.core.errors.KefuError` (bad order number, not eligible, ...) is explained
  in the customer's language and changes nothing;
- anything else (database down, timeout, a bug) gets an apology and, when the database can
  still be reached, a ticket with the transcript and a handoff, never a stack trace.

That error path is :class:`Guarded`, shared with the form validators (``refund_form.py``),
which are rasa_sdk ``FormValidationAction`` subclasses rather than ``KefuAction`` ones.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import failures, runtime
from actions.turn import EventList, Turn, language_of
from ticketing.core.errors import KefuError

__all__ = ["ActionFailed", "EventList", "Guarded", "KefuAction", "Turn", "language_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ActionFailed(Exception):
    """Something other than a refusal broke inside :meth:`Guarded.in_turn` (already logged)."""


class Guarded:
    """The one error path of every Kefu action, custom actions and form validators alike.

    :meth:`in_turn` runs database work in one unit of work and explains a refusal
    (``KefuError``); anything else ends the whole run, where :meth:`recovering` replaces what
    was said with an apology and a handoff (:func:`actions.failures.recover`).
    """

    def name(self) -> str:
        raise NotImplementedError

    def on_failed(self) -> EventList:
        """Events after the apology and handoff (a form ends itself here). Default: none."""
        return []

    def in_turn(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any],
                work: Callable[[Turn], T], *, refused: Callable[[KefuError], T]) -> T:
        """``work`` in one transaction; a refusal is explained and ``refused`` gives the result.

        Blocking: call it in a worker thread. Any other exception is logged and raised as
        :class:`ActionFailed` for :meth:`recovering`.
        """
        language = language_of(tracker)
        try:
            backend = runtime.backend()
            with backend.unit_of_work() as session:
                return work(Turn(dispatcher, tracker, domain, session, backend, language))
        except KefuError as exc:
            log.info("%s: %s (%s)", self.name(), exc.code, tracker.sender_id)
            dispatcher.utter_message(text=exc.text(language))
            return refused(exc)
        except Exception as exc:
            log.exception("action %s failed for %s", self.name(), tracker.sender_id)
            raise ActionFailed(self.name()) from exc

    async def recovering(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                         run: Awaitable[EventList]) -> EventList:
        """Await the run; if it failed, apologise, hand off, and add :meth:`on_failed`."""
        said = len(dispatcher.messages)
        try:
            return await run
        except ActionFailed:
            del dispatcher.messages[said:]  # half an answer is worse than an apology
            events = await asyncio.to_thread(failures.recover, dispatcher, tracker,
                                             language_of(tracker), failed_action=self.name())
            return [*events, *self.on_failed()]


class KefuAction(Guarded, Action, abc.ABC):
    """Base class: implement :meth:`name` and :meth:`act` (abstract, so the action server
    registers only the concrete actions)."""

    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
    def act(self, turn: Turn) -> EventList: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        """Run ``act`` in one transaction; explain domain errors, survive everything else."""
        return await self.recovering(dispatcher, tracker, asyncio.to_thread(
            self.in_turn, dispatcher, tracker, domain, self.act,
            refused=lambda error: self.on_refused(error, tracker)))

    def on_refused(self, error: KefuError, tracker: Tracker) -> EventList:
        """Events after a domain refusal (forms reset their slots here). Default: none."""
        return []
