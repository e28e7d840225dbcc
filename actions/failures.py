"""When an action breaks (database down, timeout, a bug): apologise, open a ticket, hand off.

The customer never sees a stack trace. If the database is reachable a ticket with the
transcript is opened in a fresh transaction and the conversation goes to a person; if not,
the apology says so and the marker tells the gateway the backend is unavailable
(``ticketing.desk.handoffs.unavailable_marker``).

Called by the one error path of the base class (:class:`actions.base.Guarded`); it imports
only the modules below that (:mod:`actions.turn`, :mod:`actions.handoff`).
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff, runtime
from actions.turn import EventList, Turn
from ticketing.core.i18n import Text
from ticketing.desk import handoffs

log = logging.getLogger(__name__)

SORRY = Text(
    zh="抱歉，系统刚才出了点问题，没能完成您的请求。",
    en="Sorry, something went wrong on our side and I couldn't finish that.",
)
SORRY_NO_TICKET = Text(
    zh="我们的系统暂时不可用，请几分钟后再试一次；您的消息我们已记录。",
    en="Our system is unavailable right now; please try again in a few minutes. "
       "We have kept your message.",
)


def recover(dispatcher: CollectingDispatcher, tracker: Tracker, language: str, *,
            failed_action: str) -> EventList:
    """Apology first; then a ticket and handoff when the database answers."""
    dispatcher.utter_message(text=SORRY.get(language))
    try:
        backend = runtime.backend()
        with backend.unit_of_work() as session:
            turn = Turn(dispatcher, tracker, {}, session, backend, language)
            return handoff.hand_off(turn, reason="action_failed")
    except Exception:
        log.exception("could not open a ticket after %s failed for %s", failed_action,
                      tracker.sender_id)
        dispatcher.utter_message(text=SORRY_NO_TICKET.get(language))
        dispatcher.utter_message(json_message=handoffs.unavailable_marker(
            failed_action=failed_action, language=language))
        return []
