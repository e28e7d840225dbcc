"""Answering messages whose turn was cut short, every few seconds, by any gateway.

A message is stored before it is routed; a gateway killed in between leaves it unhandled.
Replaying only at start-up missed those stored in the seconds before the kill (they were too
young to tell from a live turn), so they waited for a second restart. Here every gateway looks
again every ``replay_interval`` seconds for messages unhandled for ``grace_locked`` seconds;
:func:`replay_unhandled` takes the conversation's lock (behind a live turn, if there is
one) and reads the row again before routing, so each is answered exactly once. If the lock
fails open (Redis away) a live turn elsewhere cannot be told from a dead one, so then only
messages unhandled for ``grace`` seconds (longer than a turn may last) are routed.

The short grace keeps a dead turn's answer close to its question: the customer's next message
is answered at once, and the longer the old one waits the likelier it is answered after it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming
from ticketing.conversations import inbound
from ticketing.core.clock import utcnow
from ticketing.core.i18n import language_of_text, normalize_language
from ticketing.core.models import InboundMessage
from ticketing.desk import handoffs
from ticketing.shop import customers

log = logging.getLogger("kefu.gateway.replay")


class Replayer:
    def __init__(self, gateway: Gateway, *, interval: float, grace: float,
                 grace_locked: float | None = None) -> None:
        self.gateway = gateway
        self.interval = interval
        self.grace = grace
        self.grace_locked = grace if grace_locked is None else min(grace_locked, grace)

    async def once(self) -> int:
        routed = await replay_unhandled(self.gateway, older_than=self.grace_locked,
                                        unsure_until=self.grace)
        if routed:
            log.warning("answered %d message(s) whose turn was interrupted", routed)
        return routed

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass
            if stopping.is_set():
                return
            try:
                await self.once()
            except Exception:  # the database may be down: the rows wait for the next pass
                log.exception("replay pass failed; trying again")
                self.gateway.metrics.errors.labels("replay").inc()


async def replay_unhandled(gateway: Gateway, *, older_than: float = 5.0,
                           unsure_until: float = 0.0, limit: int = 100, parallel: int = 8) -> int:
    """Route messages stored but never routed (a gateway stopped halfway); how many.

    Runs at start-up and then every few seconds (:class:`Replayer`), in any
    gateway. A message found here may still be in a live turn elsewhere (stored, waiting
    for Rasa), so each conversation's lane is taken first - behind that turn - and the row
    is read again inside it: routed meanwhile means skipped, so nothing is answered twice.
    That needs the lane to be exclusive; when the shared lock failed open, only messages
    older than ``unsure_until`` seconds (longer than any turn) are routed.
    Conversations are replayed side by side (at most ``parallel``), each in order.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than)
    unsure = now - timedelta(seconds=unsure_until)
    rows = await gateway.db(lambda s: [
        (row.id, row.conversation_id, row.received_at)
        for row in inbound.unhandled(s, received_before=cutoff, limit=limit)])
    backlog: dict[str, list[tuple[int, Any]]] = {}
    for inbound_id, conversation_id, received_at in rows:
        backlog.setdefault(conversation_id, []).append((inbound_id, received_at))

    def still_unhandled(session: Session,
                        inbound_id: int) -> tuple[Incoming, str, int | None, bool] | None:
        row = session.get(InboundMessage, inbound_id)
        if row is None or row.handled_at is not None:
            return None
        channel, external_id = customers.split_conversation_id(row.conversation_id)
        payload = row.payload or {}
        attachments = list(payload.get("attachments") or [])
        msg = Incoming(channel=channel, external_id=external_id, dedupe_key=row.dedupe_key,
                       text=row.text, payload=payload.get("button"),
                       attachments=attachments, kind="photo" if attachments else "text")
        ticket = handoffs.handed_off_ticket(session, conversation_id=row.conversation_id)
        identity = customers.identity_by_conversation(session,
                                                      conversation_id=row.conversation_id)
        verified = identity is not None and identity.verified_at is not None
        return (msg, normalize_language(language_of_text(row.text)),
                ticket.id if ticket is not None else None, verified)

    gate = asyncio.Semaphore(max(parallel, 1))

    async def one_conversation(conversation: str, ids: list[tuple[int, Any]]) -> int:
        routed = 0
        async with gate, gateway.lanes.hold(conversation) as exclusive:
            for inbound_id, received_at in ids:
                if not exclusive and received_at > unsure:
                    break  # may be a live turn elsewhere: later, and keep the order
                found = await gateway.db(lambda s: still_unhandled(s, inbound_id))
                if found is None:
                    continue  # a live turn answered it while we waited for the lane
                msg, language, ticket_id, verified = found
                await gateway.route(msg, conversation, inbound_id, language, ticket_id,
                                    verified=verified)
                routed += 1
        return routed

    done = await asyncio.gather(*(one_conversation(c, ids) for c, ids in backlog.items()),
                                return_exceptions=True)
    for conversation, result in zip(backlog, done):
        if isinstance(result, BaseException):
            log.error("replay of %s failed; tried again later", conversation,
                      exc_info=result)
    return sum(r for r in done if isinstance(r, int))
