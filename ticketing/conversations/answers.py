"""A turn's answers into the outbox: the gateway's hot path, as statements built once.

Every message the assistant answers queues its answers here, so this is where SQLAlchemy's
ORM cost a turn most (a unit-of-work flush per row, statements built and keyed per call: about
half of a gateway's CPU, docs/performance.md). The rows are the ones :func:`outbox.enqueue`
writes, with one difference that only the caller can decide: when the gateway that queues
them can reach the customer and nothing earlier is pending for the conversation, they are
born leased to it (due only when the lease runs out, as :func:`outbox.lease_conversation`
would leave them) and it sends them right after the commit, with no lease transaction and no
wake-up of the other gateways (no Redis publish: :mod:`ticketing.conversations.wakeups` sees
ORM rows only, and these are written on the session's connection). Otherwise they queue
behind what is pending, through :func:`outbox.enqueue`, and the wake-up delivers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core.clock import utcnow
from ticketing.core.errors import ValidationError
from ticketing.core.i18n import normalize_language
from ticketing.core.models import ChannelIdentity, OutboxMessage

KIND = "bot"

# the conversation's customer (None: an anonymous visitor) and whether anything is pending
_CONTEXT = select(
    select(ChannelIdentity.customer_id)
    .where(ChannelIdentity.conversation_id == bindparam("conversation"))
    .scalar_subquery(),
    exists().where(OutboxMessage.conversation_id == bindparam("conversation"),
                   OutboxMessage.delivered_at.is_(None)),
)
_INSERT = insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True)


def queue(session: Session, *, conversation_id: str, answers: Sequence[tuple[str, dict[str, Any]]],
          language: str, ticket_id: int | None = None, lease_seconds: float | None = None,
          now: datetime | None = None) -> list[OutboxMessage] | None:
    """Owe the conversation's customer ``answers`` (text, payload), in order.

    ``lease_seconds``: the caller delivers the rows itself right after commit. Returns them
    (detached: their ids and columns as stored) when they were born leased; None when they
    queued behind pending rows, or without a lease, for the poll and wake-ups to deliver.
    """
    if not conversation_id:
        raise ValidationError("a turn's answers need their conversation")
    if not answers or any(not text or not text.strip() for text, _ in answers):
        raise ValidationError("outbox text is empty")
    customer_id, pending = session.connection().execute(
        _CONTEXT, {"conversation": conversation_id}).one()
    if not lease_seconds or pending:
        for text, payload in answers:
            outbox.enqueue(session, customer_id=customer_id, conversation_id=conversation_id,
                           kind=KIND, text=text, language=language, payload=payload,
                           ticket_id=ticket_id, now=now, known_customer=True)
        return None
    now = now or utcnow()
    rows = [OutboxMessage(customer_id=customer_id, conversation_id=conversation_id,
                          ticket_id=ticket_id, kind=KIND, text=text,
                          language=normalize_language(language), payload=dict(payload),
                          created_at=now, next_attempt_at=now + timedelta(seconds=lease_seconds),
                          attempts=0, last_error=None, delivered_at=None)
            for text, payload in answers]
    ids = session.connection().execute(_INSERT, [_columns(row) for row in rows]).scalars().all()
    for row, row_id in zip(rows, ids, strict=True):
        row.id = row_id
    return rows


def _columns(row: OutboxMessage) -> dict[str, Any]:
    return {"customer_id": row.customer_id, "conversation_id": row.conversation_id,
            "ticket_id": row.ticket_id, "kind": row.kind, "text": row.text,
            "language": row.language, "payload": row.payload, "created_at": row.created_at,
            "next_attempt_at": row.next_attempt_at, "attempts": 0}
