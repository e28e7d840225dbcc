"""The inbound log: every customer message is stored before it is routed.

Storing first is what makes "nothing the customer wrote is lost" true when Rasa, a channel or
the gateway itself fails halfway, and the channel's own message id (``dedupe_key``) makes a
redelivered update a no-op instead of a second answer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.errors import NotFound, ValidationError
from ticketing.core.models import InboundMessage

MAX_TEXT = 4000  # characters; the gateway refuses longer messages before they get here
ROUTES = ("rasa", "ticket", "fallback_ticket", "refused", "rate_limited", "verification",
          "unsupported")
# session.info key: (conversation_id, channel, received_at) of the messages this transaction
# stored, for the reports' conversation facts (``ticketing.desk.facts`` folds them in before
# the commit); rows the ORM flushes are noted by that module's own listener
ARRIVALS = "kefu.inbound.arrivals"
_INSERT = insert(InboundMessage).returning(InboundMessage.id)


def record(
    session: Session,
    *,
    channel: str,
    conversation_id: str,
    dedupe_key: str,
    text: str,
    payload: dict[str, object] | None = None,
    now: datetime | None = None,
    assume_new: bool = False,
) -> tuple[InboundMessage, bool]:
    """Store a message once; returns ``(row, created)`` — ``created`` is False for a duplicate.

    ``assume_new``: insert without looking for a duplicate first (one statement, not four:
    a channel redelivers rarely); a duplicate then raises ``IntegrityError`` and the caller's
    transaction is lost, so the caller runs again without it. The row returned is then not
    in the session (its id and columns as stored).
    """
    if not dedupe_key or len(dedupe_key) > 128:
        raise ValidationError("dedupe_key must be 1-128 characters")
    if not conversation_id:
        raise ValidationError("conversation_id is required")
    row = InboundMessage(channel=channel, conversation_id=conversation_id, dedupe_key=dedupe_key,
                         text=(text or "")[:MAX_TEXT], payload=dict(payload or {}),
                         received_at=now or utcnow())
    if assume_new:  # on the connection, not a unit-of-work flush: every turn stores one
        row.id = session.connection().execute(_INSERT, {
            "channel": row.channel, "conversation_id": row.conversation_id,
            "dedupe_key": row.dedupe_key, "text": row.text, "payload": row.payload,
            "received_at": row.received_at}).scalar_one()
        session.info.setdefault(ARRIVALS, []).append(
            (row.conversation_id, row.channel, row.received_at))
        return row, True
    query = select(InboundMessage).where(InboundMessage.channel == channel,
                                         InboundMessage.dedupe_key == dedupe_key)
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same update arrived twice at once
        return session.scalars(query).one(), False
    return row, True


_MARK_HANDLED = (update(InboundMessage)
                 .where(InboundMessage.id == bindparam("message_id"),
                        InboundMessage.handled_at.is_(None))
                 .values(handled_at=bindparam("handled_at"), route=bindparam("route"),
                         ticket_id=bindparam("ticket_id")))


def mark_handled(
    session: Session, *, message_id: int, route: str, ticket_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Record where the message went; the first route recorded wins (one UPDATE: no read).

    True when this call recorded it. On PostgreSQL a second transaction routing the same
    message waits for the first one's row lock and then records nothing, so a caller that
    answers only on True answers a message once, whatever ran twice before it.
    """
    if route not in ROUTES:
        raise ValidationError(f"unknown route {route!r}")
    row = session.identity_map.get(session.identity_key(InboundMessage, message_id))
    if isinstance(row, InboundMessage):  # stored in this transaction: keep the object current
        if row.handled_at is not None:
            return False
        row.handled_at, row.route, row.ticket_id = now or utcnow(), route, ticket_id
        return True
    # on the connection: the row is not loaded here (looked for above), so the ORM's search
    # of the session for it would be work for nothing, on every turn
    changed = session.connection().execute(_MARK_HANDLED, {
        "message_id": message_id, "handled_at": now or utcnow(), "route": route,
        "ticket_id": ticket_id}).rowcount
    if not changed and session.get(InboundMessage, message_id) is None:
        raise NotFound(inbound_message_id=message_id)
    return bool(changed)


def unhandled(session: Session, *, received_before: datetime,
              limit: int = 100) -> list[InboundMessage]:
    """Messages stored but never routed (the gateway stopped halfway), oldest first."""
    return list(session.scalars(
        select(InboundMessage)
        .where(InboundMessage.handled_at.is_(None), InboundMessage.received_at < received_before)
        .order_by(InboundMessage.id).limit(limit)))
