"""What the gateway's channels hand over and get back: a message in, its outcome, a channel.

Kept apart from ``core.py`` (the routing) so channels and tests name these without the
machinery behind them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.gateway.text_hygiene import clean
from ticketing.conversations.chat_history import Entry
from ticketing.shop import customers


class Channel(Protocol):
    """What the gateway needs from a channel (Telegram, widget)."""

    name: str

    async def deliver(self, external_id: str, entry: Entry) -> None:
        """Show ``entry`` to the customer; raise when it did not reach them."""

    async def typing(self, external_id: str, on: bool) -> None:
        """Best effort 'the assistant is writing' indicator."""


@dataclass
class Incoming:
    """A customer message as a channel hands it over."""

    channel: str
    external_id: str
    dedupe_key: str  # the channel's own id of this message
    text: str = ""
    payload: str | None = None  # a button's payload (what Rasa gets instead of ``text``)
    language: str | None = None  # the channel's hint (Telegram language_code, widget setting)
    kind: str = "text"  # text | photo | unsupported
    attachments: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # stored with the message (client_id)

    @property
    def conversation_id(self) -> str:
        return customers.conversation_id_for(self.channel, self.external_id)


@dataclass(frozen=True)
class Outcome:
    """What happened to a message; ``reply`` is an immediate answer the channel shows itself."""

    # routed | duplicate | too_long | rate_limited | invalid (unreadable: never retry) |
    # unavailable (the database is down: the widget retries) | deferred (stored; a database
    # failure cut the turn short: replay.py answers it once, seconds later)
    status: str
    route: str | None = None
    inbound_id: int | None = None
    reply: str | None = None
    language: str = "zh"


def rasa_rows(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Rasa's answers as (text, payload) outbox rows; the handoff marker is not for customers."""
    rows = []
    for message in messages:
        buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                   for b in message.get("buttons") or [] if isinstance(b, dict)]
        text = (message.get("text") or "").strip()
        if message.get("image"):
            text = f"{text}\n{message['image']}".strip()
        if not text and buttons:
            text = " / ".join(b["title"] for b in buttons)
        if text:
            rows.append((text, {"buttons": buttons} if buttons else {}))
    return rows


def cleaned(msg: Incoming) -> Incoming:
    """``msg`` with text and payload that can be stored (``text_hygiene``)."""
    text = clean(msg.text)
    payload = clean(msg.payload) if msg.payload is not None else None
    if text == msg.text and payload == msg.payload:
        return msg
    return dataclasses.replace(msg, text=text, payload=payload)
