"""The customer outbox: messages owed to a customer until the gateway confirms delivery.

Delivery is at-least-once and in order per conversation: a message is due only when no earlier
message of the same conversation is still undelivered, so a failing message holds back the ones
behind it instead of letting them overtake it. Failures back off exponentially
(5 s · 2^(attempts-1), at most 10 minutes) and undelivered messages are never deleted.

A message owed to a customer without a conversation (a ticket opened at the desk, a notice
about an order) goes to the customer's newest channel identity
(:func:`~ticketing.conversations.addressing.newest_conversation`): chosen when it is queued,
or, while the customer has none yet, by the gateways' poll (:func:`route_waiting`) once they
do; until then it backs off like a failed delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, Select, and_, any_, bindparam, exists, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from ticketing.conversations import addressing
from ticketing.core.clock import utcnow
from ticketing.core.errors import CustomerNotFound, NotFound, ValidationError
from ticketing.core.i18n import normalize_language
from ticketing.core.models import ChannelIdentity, Customer, OutboxMessage
from ticketing.core.models.base import UTCDateTime

BASE_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 600.0
NO_CHANNEL = "the customer has no channel identity yet"


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures (1 → 5 s, 2 → 10 s, … ≤ 10 min)."""
    seconds = BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


def enqueue(
    session: Session,
    *,
    customer_id: int | None,
    conversation_id: str | None,
    kind: str,
    text: str,
    language: str = "zh",
    ticket_id: int | None = None,
    payload: dict[str, object] | None = None,
    now: datetime | None = None,
    known_customer: bool = False,
) -> OutboxMessage:
    """Owe ``text`` to the customer; due at once.

    ``customer_id`` may be None for an anonymous visitor; the conversation is then required.
    Without a conversation the message goes to the customer's newest channel identity (and
    takes along what was already waiting for one, so it cannot overtake it).

    ``known_customer``: the id was read from a row that references the customer, so it is not
    looked up again. (A gateway's own answers, born leased to it, are queued by
    :mod:`ticketing.conversations.answers`.)
    """
    if not text or not text.strip():
        raise ValidationError("outbox text is empty")
    if not kind or len(kind) > 24:
        raise ValidationError("outbox kind must be 1-24 characters")
    if customer_id is None and not conversation_id:
        raise ValidationError("an outbox message needs a customer or a conversation")
    if customer_id is not None and not known_customer and \
            session.get(Customer, customer_id) is None:
        raise CustomerNotFound(customer_id=customer_id)
    now = now or utcnow()
    if conversation_id is None and customer_id is not None:
        conversation_id = addressing.newest_conversation(session, customer_id=customer_id)
        if conversation_id is not None:
            addressing.address(session, customer_id=customer_id,
                               conversation_id=conversation_id, now=now)
    message = OutboxMessage(
        customer_id=customer_id,
        conversation_id=conversation_id,
        ticket_id=ticket_id,
        kind=kind,
        text=text,
        language=normalize_language(language),
        payload=dict(payload or {}),
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(message)
    session.flush()
    return message


def route_waiting(session: Session, *, now: datetime | None = None,
                  limit: int = 500) -> set[str]:
    """The poll's part: due messages without a conversation go to their customer's newest
    channel identity; a customer with none yet counts a failed try (backoff), so their
    message is not looked at on every poll. Returns the conversations that got messages.

    Only each customer's first waiting message is due (the rest queue behind it), and it
    takes the rest along; rows locked by another gateway's poll are skipped.
    """
    now = now or utcnow()
    # ids first, on the connection: on almost every poll there are none
    ids = session.connection().execute(_waiting_firsts().limit(limit), {"now": now}).scalars()
    firsts = _loaded(session, list(ids))
    if not firsts:
        return set()
    reachable = set(session.scalars(
        select(ChannelIdentity.customer_id).distinct()
        .where(ChannelIdentity.customer_id.in_({m.customer_id for m in firsts}))))
    routed: set[str] = set()
    for first in firsts:
        customer_id = first.customer_id or 0  # never 0: rows without a customer are not read
        conversation_id = (addressing.newest_conversation(session, customer_id=customer_id)
                           if customer_id in reachable else None)
        if conversation_id is None:
            mark_failed(session, message_id=first.id, error=NO_CHANNEL, now=now)
            continue
        addressing.address(session, customer_id=customer_id, conversation_id=conversation_id,
                           now=now)
        routed.add(conversation_id)
    session.flush()
    return routed


# the poll's statements, built once (a gateway polls twice a second); ``now`` is bound per call
def _due_now() -> tuple[Any, ...]:
    """What makes a row due: undelivered, its time come, nothing earlier pending before it."""
    return (OutboxMessage.delivered_at.is_(None),
            OutboxMessage.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
            ~_earlier_pending())


@lru_cache(maxsize=1)
def _due() -> Select[tuple[OutboxMessage]]:
    return select(OutboxMessage).where(*_due_now()).order_by(OutboxMessage.id)


@lru_cache(maxsize=1)
def _due_streams() -> Select[tuple[str, datetime]]:
    return (select(OutboxMessage.conversation_id, OutboxMessage.created_at)
            .where(OutboxMessage.conversation_id.is_not(None), *_due_now())
            .order_by(OutboxMessage.id))


@lru_cache(maxsize=1)
def _waiting_firsts() -> Select[tuple[int]]:
    return (select(OutboxMessage.id)
            .where(OutboxMessage.conversation_id.is_(None),
                   OutboxMessage.customer_id.is_not(None), *_due_now())
            .order_by(OutboxMessage.id)
            .with_for_update(skip_locked=True, of=OutboxMessage))


@lru_cache(maxsize=1)
def _earlier_pending():
    """An earlier undelivered message of the same conversation (or customer, without one).

    Built once (an immutable clause): adapting the aliased columns took half the CPU of a
    gateway's poll, twice a second per gateway."""
    earlier = aliased(OutboxMessage)
    same_stream = or_(
        and_(
            OutboxMessage.conversation_id.is_not(None),
            earlier.conversation_id == OutboxMessage.conversation_id,
        ),
        and_(
            OutboxMessage.conversation_id.is_(None),
            earlier.conversation_id.is_(None),
            earlier.customer_id == OutboxMessage.customer_id,
        ),
    )
    return exists().where(
        earlier.delivered_at.is_(None), earlier.id < OutboxMessage.id, same_stream
    )


def due(
    session: Session,
    *,
    now: datetime | None = None,
    limit: int = 100,
    lease_seconds: float | None = None,
) -> list[OutboxMessage]:
    """Messages to deliver now, oldest first, at most one per conversation.

    With ``lease_seconds`` the returned messages are pushed back by that long, so another
    gateway polling meanwhile does not pick them up too (rows are locked with SKIP LOCKED
    where the database supports it).
    """
    now = now or utcnow()
    stmt = _due().limit(limit)
    if lease_seconds is not None:
        stmt = stmt.with_for_update(skip_locked=True, of=OutboxMessage)
    messages = list(session.scalars(stmt, {"now": now}))
    if lease_seconds is not None:
        for message in messages:
            message.next_attempt_at = now + timedelta(seconds=lease_seconds)
        session.flush()
    return messages


def due_streams(session: Session, *, now: datetime | None = None,
                limit: int = 500) -> list[tuple[str, datetime]]:
    """The poll's question: which conversations have a message due now, with when it was
    queued (oldest first; rows without a conversation are :func:`route_waiting`'s). Read on
    the connection: the poll needs no rows, and it asks twice a second."""
    rows = session.connection().execute(_due_streams().limit(limit), {"now": now or utcnow()})
    return [(conversation_id, created_at) for conversation_id, created_at in rows]


def _loaded(session: Session, ids: list[int]) -> list[OutboxMessage]:
    if not ids:
        return []
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)))


def has_pending(session: Session, *, conversation_id: str) -> bool:
    """Whether the conversation has a row not yet delivered (a new one must queue behind it)."""
    return session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.conversation_id == conversation_id,
                                       OutboxMessage.delivered_at.is_(None)).limit(1)
    ) is not None


def lease_conversation(
    session: Session,
    *,
    conversation_id: str,
    lease_seconds: float,
    now: datetime | None = None,
    limit: int = 50,
) -> list[OutboxMessage]:
    """The conversation's undelivered messages, in order, up to the first that is not due yet.

    For a gateway that has just produced answers and delivers them at once: the rows are
    pushed back by ``lease_seconds`` (locked on databases that can), so a poller elsewhere does
    not send them too. A message still backing off holds back everything behind it.
    """
    now = now or utcnow()
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.conversation_id == conversation_id,
               OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(of=OutboxMessage)  # wait, never skip: skipping would reorder
    )
    leased: list[OutboxMessage] = []
    for message in session.scalars(stmt):
        if message.next_attempt_at > now:
            break
        message.next_attempt_at = now + timedelta(seconds=lease_seconds)
        leased.append(message)
    session.flush()
    return leased


def _get(session: Session, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(outbox_message_id=message_id)
    return message


def mark_delivered(
    session: Session, *, message_id: int, now: datetime | None = None
) -> OutboxMessage:
    """Record delivery; a second confirmation changes nothing."""
    message = _get(session, message_id)
    if message.delivered_at is None:
        message.delivered_at = now or utcnow()
        message.last_error = None
    return message


def mark_delivered_many(session: Session, *, message_ids: list[int],
                        now: datetime | None = None) -> int:
    """Record the delivery of several rows in one statement; already recorded ones stay as
    they are. Returns how many were recorded now. Run on the connection (the gateway's rows
    are not loaded in this session): rows a caller loaded here are not refreshed."""
    if not message_ids:
        return 0
    connection = session.connection()
    statement = _DELIVERED_PG if connection.dialect.name == "postgresql" else _DELIVERED
    return connection.execute(statement, {"ids": list(message_ids),
                                          "at": now or utcnow()}).rowcount


# built once, on every turn's path: PostgreSQL gets one array parameter, so the statement's
# text is the same for any number of rows and psycopg prepares it (an expanding IN is new SQL
# for each count, compiled and sent unprepared); SQLite has no arrays
def _delivered(rows: Any) -> Any:
    return (update(OutboxMessage).where(rows, OutboxMessage.delivered_at.is_(None))
            .values(delivered_at=bindparam("at"), last_error=None))


_DELIVERED = _delivered(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
_DELIVERED_PG = _delivered(OutboxMessage.id == any_(bindparam("ids", type_=ARRAY(Integer))))


def mark_failed(
    session: Session, *, message_id: int, error: str, now: datetime | None = None
) -> OutboxMessage:
    """Count a failed try and schedule the next one; a late failure after delivery is ignored."""
    message = _get(session, message_id)
    if message.delivered_at is not None:
        return message
    now = now or utcnow()
    message.attempts = (message.attempts or 0) + 1
    message.last_error = (error or "unknown error")[:2000]
    message.next_attempt_at = now + backoff(message.attempts)
    return message


def pending(session: Session, *, conversation_id: str) -> list[OutboxMessage]:
    """Undelivered messages of one conversation, in order (for the desk and diagnostics)."""
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.conversation_id == conversation_id,
            OutboxMessage.delivered_at.is_(None),
        )
        .order_by(OutboxMessage.id)
    )
    return list(session.scalars(stmt))


def oldest_pending(session: Session, *, conversation_id: str) -> OutboxMessage | None:
    """The conversation's first undelivered message (how long it has waited), or None."""
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.conversation_id == conversation_id,
               OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id).limit(1)).first()


def recent(session: Session, *, conversation_id: str, limit: int = 50) -> list[OutboxMessage]:
    """The conversation's newest messages, newest first (to resolve a button pressed late)."""
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.conversation_id == conversation_id)
        .order_by(OutboxMessage.id.desc()).limit(limit)))


def retry_now(session: Session, *, conversation_id: str) -> int:
    """The customer is reachable again (a page reconnected): what is owed is due at once,
    not after its backoff. Returns how many messages are owed."""
    messages = pending(session, conversation_id=conversation_id)
    for message in messages:
        message.next_attempt_at = min(message.next_attempt_at, message.created_at)
    session.flush()
    return len(messages)


def hold_behind(session: Session, *, failed_id: int, message_ids: list[int]) -> None:
    """Messages leased together with one that failed wait as long as it does (never overtake)."""
    failed = _get(session, failed_id)
    for message_id in message_ids:
        message = session.get(OutboxMessage, message_id)
        if message is not None and message.id > failed_id and message.delivered_at is None:
            message.next_attempt_at = failed.next_attempt_at
    session.flush()


def mark_replaced(session: Session, *, message_id: int, hidden_key: str,
                  now: datetime | None = None) -> OutboxMessage:
    """The assistant said this message in its own words (queued after it): delivered, and
    flagged ``hidden_key`` so histories show the assistant's words, not these."""
    message = _get(session, message_id)
    message.payload = {**(message.payload or {}), hidden_key: True}
    return mark_delivered(session, message_id=message_id, now=now)
