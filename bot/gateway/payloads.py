"""What of a customer's message may reach Rasa as an intent, and what only as words.

Rasa reads any message that starts with ``/`` as an intent with entities
(``/restart``, ``/EXTERNAL_csat_request``, ``/inform{"order_id": "…"}``): its regex message
handler skips the NLU and believes it. A customer must not be able to do that by typing, so
the gateway follows one rule:

- a button *payload* goes to Rasa as a payload only if the bot itself offered that button in
  this conversation recently (the ``buttons`` of the conversation's newest outbox rows, the
  same window Telegram resolves hashed buttons from), or it is one of the few payloads the
  gateway's own channels send (:data:`ENTRY_PAYLOADS`, Telegram's ``/start``);
- everything else (typed text, a forged or stale payload, whose button title is then sent)
  goes as plain text, with any leading ``/`` removed so Rasa's parser cannot take it for an
  intent (:func:`as_text`).

Payloads are also bounded before they are stored (:func:`acceptable`): the text limit
applied to ``text`` only, and an unbounded payload was both stored and parsed by Rasa, whose
cost grows with the square of the length.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from ticketing.conversations import outbox

ENTRY_PAYLOADS = frozenset({"/greet"})  # sent by the gateway's channels themselves
RECENT_ROWS = 50  # outbox rows of the conversation whose buttons still count as offered
INTENT_PREFIX = "/"
_LEADING = re.compile(r"^[\s/]+")  # Rasa strips whitespace before looking for the "/"
EMPTY_INTENT_TEXT = "?"  # what a message of nothing but slashes becomes


def acceptable(payload: str, *, max_chars: int) -> bool:
    """A payload of a size and shape a button of ours could have: short, one line, printable."""
    return 0 < len(payload) <= max_chars and payload.isprintable()


def offered(session: Session, *, conversation_id: str, limit: int = RECENT_ROWS) -> set[str]:
    """The payloads of the buttons the bot showed in this conversation's newest messages."""
    found: set[str] = set()
    for row in outbox.recent(session, conversation_id=conversation_id, limit=limit):
        buttons = (row.payload or {}).get("buttons") or []
        if not isinstance(buttons, list):
            continue
        for button in buttons:
            if isinstance(button, dict) and isinstance(button.get("payload"), str):
                found.add(button["payload"])
    return found


def is_offered(session: Session, *, conversation_id: str, payload: str) -> bool:
    """May ``payload`` go to Rasa as a payload in this conversation (see the module docstring)?"""
    return payload in ENTRY_PAYLOADS or payload in offered(session, conversation_id=conversation_id)


def as_text(text: str) -> str:
    """``text`` as Rasa must read it: words for the NLU, never an intent."""
    if not text.lstrip().startswith(INTENT_PREFIX):
        return text
    return _LEADING.sub("", text) or EMPTY_INTENT_TEXT


def for_nlu(text: str, *, max_chars: int) -> str:
    """Typed text as sent to Rasa: never an intent, at most ``max_chars`` characters.

    The full text is stored for the ticket and the agent; only the NLU sees the beginning, so
    one turn's cost stays bounded whatever the customer pasted.
    """
    return as_text(text)[:max_chars] if max_chars > 0 else as_text(text)
