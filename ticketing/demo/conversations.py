"""Demo conversations with the assistant: what customers wrote, so containment has a history.

Each demo ticket that came from a chat gets the messages that led to it (a few minutes before
the handoff); besides those, about six conversations a day over the last two weeks never
needed a person (order status, delivery times, product questions answered by the bot). Only
the inbound side is stored, as the gateway stores it; the reports' conversation facts follow.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.conversations import inbound
from ticketing.core.models import Ticket

QUESTIONS = (
    "我的订单到哪了", "Where is my order?", "什么时候发货", "When will it ship?",
    "这个有货吗", "Is this in stock?", "怎么申请退款", "How do I return this?", "谢谢", "Thanks!",
)
DAILY = 6
DAYS = 14


def build(session: Session, *, rng: random.Random, now: datetime) -> int:
    """Store the demo's inbound messages; returns how many conversations there are."""
    conversations = 0
    for ticket_id, conversation_id, created in session.execute(
            select(Ticket.id, Ticket.conversation_id, Ticket.created_at)
            .where(Ticket.conversation_id.is_not(None)).order_by(Ticket.id)):
        channel = conversation_id.split(":", 1)[0]
        for i, minutes in enumerate((6, 3)):
            _answered(session, channel, conversation_id, f"demo-{ticket_id}-{i}",
                      rng.choice(QUESTIONS), created - timedelta(minutes=minutes))
        conversations += 1
    for day in range(DAYS):
        for n in range(DAILY + rng.randrange(-2, 3)):
            channel = "widget" if rng.random() < 0.6 else "telegram"
            conversation_id = f"{channel}:kefu-demo-visitor-{day}-{n}"
            start = now - timedelta(days=day, hours=rng.uniform(0.5, 20))
            for i in range(rng.randrange(1, 4)):
                _answered(session, channel, conversation_id, f"{conversation_id}-{i}",
                          rng.choice(QUESTIONS), start + timedelta(minutes=2 * i))
            conversations += 1
    return conversations


def _answered(session: Session, channel: str, conversation_id: str, key: str, text: str,
              at: datetime) -> None:
    """A past message, stored as the gateway stores one and marked answered by the assistant:
    history, never a turn for a gateway starting up to replay (that made fallback tickets)."""
    row, _created = inbound.record(session, channel=channel, conversation_id=conversation_id,
                                   dedupe_key=key, text=text, now=at)
    inbound.mark_handled(session, message_id=row.id, route="rasa", now=at)
