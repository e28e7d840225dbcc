"""A conversation as the customer saw it: what they wrote and what they were sent, in order.

The widget shows it after a reload or a reconnect, and the gateway uses its tail as the
transcript of a ticket it opens itself (when the assistant is unreachable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.models import InboundMessage, OutboxMessage

HIDDEN = "replaced_by_assistant"  # an outbox row the assistant answered in its place


@dataclass(frozen=True)
class Entry:
    id: str  # "in-12" | "out-34"
    direction: str  # "in" | "out"
    kind: str  # "customer" or the outbox kind ("bot", "agent_reply", "notice", ...)
    text: str
    at: datetime
    buttons: list[dict[str, str]] = field(default_factory=list)
    agent: str | None = None
    client_id: str | None = None
    delivered: bool = True

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "direction": self.direction, "kind": self.kind,
                                "text": self.text, "buttons": self.buttons,
                                "at": self.at.isoformat()}
        if self.agent:
            data["agent"] = self.agent
        if self.client_id:
            data["client_id"] = self.client_id
        return data


def outgoing_entry(message: OutboxMessage) -> Entry:
    payload = message.payload or {}
    buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
               for b in payload.get("buttons") or [] if isinstance(b, dict)]
    agent = payload.get("agent") if message.kind == "agent_reply" else None
    return Entry(id=f"out-{message.id}", direction="out", kind=message.kind, text=message.text,
                 at=message.created_at, buttons=buttons, agent=str(agent) if agent else None,
                 delivered=message.delivered_at is not None)


def incoming_entry(message: InboundMessage) -> Entry:
    payload = message.payload or {}
    client_id = payload.get("client_id")
    return Entry(id=f"in-{message.id}", direction="in", kind="customer", text=message.text,
                 at=message.received_at, client_id=str(client_id) if client_id else None)


def history(session: Session, *, conversation_id: str, limit: int = 200) -> list[Entry]:
    """The newest ``limit`` entries, oldest first."""
    incoming = session.scalars(
        select(InboundMessage).where(InboundMessage.conversation_id == conversation_id)
        .order_by(InboundMessage.id.desc()).limit(limit))
    outgoing = session.scalars(
        select(OutboxMessage).where(OutboxMessage.conversation_id == conversation_id)
        .order_by(OutboxMessage.id.desc()).limit(limit))
    entries = [incoming_entry(m) for m in incoming]
    entries += [outgoing_entry(m) for m in outgoing if not (m.payload or {}).get(HIDDEN)]
    entries.sort(key=lambda e: (e.at, 0 if e.direction == "in" else 1, e.id))
    return entries[-limit:]


def transcript(session: Session, *, conversation_id: str, limit: int = 60) -> list[dict[str, Any]]:
    """The tail as ticket transcript turns (customer and bot; agents' words are on the thread)."""
    turns = []
    for entry in history(session, conversation_id=conversation_id, limit=limit):
        if (entry.direction == "in" and entry.text.startswith("/")) or entry.kind == "agent_reply":
            continue  # a button click, not words; an agent's reply is on the ticket already
        author = "customer" if entry.direction == "in" else "bot"
        turns.append({"author_type": author, "body": entry.text[:4000], "at": entry.at})
    return turns
