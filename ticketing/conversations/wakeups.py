"""Waking the gateways when something is owed to a customer (the outbox), after commit.

Agent replies (desk web), surveys, follow-ups and reminders (worker), notices (refunds,
ingest) and the gateway's own answers all land in the outbox; the gateways deliver it. Polling
alone costs up to ``outbox_interval`` of latency per row, so :func:`install` hooks every
session of a writing process and, once a transaction that queued outbox rows has committed,
publishes each conversation id on the Redis channel :data:`CHANNEL`. Every gateway subscribes
and delivers that conversation at once. Nothing is published for a rolled-back transaction,
and a Redis error never fails the commit: the gateways' poll finds the rows anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.db import after_commit
from ticketing.core.models import OutboxMessage

log = logging.getLogger(__name__)

CHANNEL = "kefu:outbox"
_PENDING = "kefu_outbox_pending"  # session.info key: conversations this transaction queued for

try:  # redis is a dependency, but the single-machine set-up must import without a server
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover
    RedisError = OSError  # type: ignore[misc,assignment]

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


def queued_for(session: Session) -> set[str]:
    """Conversations with outbox rows added in this flush (rows without one wait for the poll).

    A row not yet due is not announced. (A gateway's answers born leased to it, which it
    delivers itself, are written by :mod:`ticketing.conversations.answers` outside the ORM
    and never announced either.)
    """
    return {obj.conversation_id for obj in session.new
            if isinstance(obj, OutboxMessage) and obj.conversation_id
            and not obj.next_attempt_at > obj.created_at}


def publish(client: Any, conversations: set[str], *, channel: str = CHANNEL) -> bool:
    """Wake the gateways for ``conversations``; False (logged) when Redis cannot be reached."""
    try:
        for conversation in sorted(conversations):
            client.publish(channel, conversation)
        return True
    except PUBLISH_ERRORS as exc:
        log.warning("outbox wake-up not published (gateways poll instead): %s", exc)
        return False


def install(target: sessionmaker[Session] | type[Session], client: Any, *,
            channel: str = CHANNEL) -> Callable[[], None]:
    """Publish the conversations of committed outbox rows of sessions made by ``target``
    (a synchronous redis client); returns an uninstaller."""

    def collect(session: Session, pending: set[str] | None) -> set[str]:
        return (pending or set()) | queued_for(session)

    def deliver(pending: set[str]) -> None:
        publish(client, pending, channel=channel)

    return after_commit(target, key=_PENDING, collect=collect, deliver=deliver)
