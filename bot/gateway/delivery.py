"""Delivering the outbox: once, in order per conversation, retried with backoff until it lands.

Two things start a delivery: the gateway right after it queued answers (no waiting), and a
poller that finds whatever is due (agent replies written at the desk, CSAT surveys and
follow-ups from the worker, retries). Both go through one lane per conversation, and rows are
leased in the database, so nothing is sent twice or out of order. With several gateways a
third: a wake-up from Redis (``bot/gateway/wakeups.py``) when another process queued rows.

A widget conversation can only be delivered by the gateway holding its WebSocket. Another
gateway leaves a young row alone (``widget_handover`` seconds) for the one with the socket,
which its wake-up or poll finds; past that the usual failure and backoff apply (nobody has
the page open; a reconnect makes the rows due again).

Two kinds of rows need the assistant first:
- a row about a handed-off ticket that is now solved or closed hands the conversation back
  (Rasa ``resume``, then the handoff is forgotten);
- a row carrying an ``intent`` (``EXTERNAL_csat_request``...) is run in Rasa; what the bot
  says is queued in its place (the row is kept, hidden from the history). If Rasa cannot run
  it, the row's own text and buttons are shown instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.gateway.core import Gateway
from bot.gateway.messages import rasa_rows
from bot.gateway.lanes import Lanes
from ticketing.conversations import chat_history, outbox
from ticketing.desk import handoffs
from ticketing.shop import customers
from ticketing.conversations.chat_history import Entry
from ticketing.core.clock import utcnow
from ticketing.core.models import OutboxMessage

log = logging.getLogger("kefu.gateway.delivery")

RECORD_FIRST_PAUSE, RECORD_LAST_PAUSE = 0.25, 4.0  # seconds between tries to record a delivery
LEASE_LIMIT = 50  # rows one lease takes; a full lease means more may wait behind it
SENT, REPLACED = "sent", "replaced"  # what became of a leased row (False: it failed)


@dataclass(frozen=True)
class Row:
    id: int
    conversation_id: str
    kind: str
    language: str
    customer_id: int | None
    ticket_id: int | None
    payload: dict[str, Any]
    entry: Entry

    @classmethod
    def of(cls, message: OutboxMessage) -> Row:
        return cls(id=message.id, conversation_id=message.conversation_id or "", kind=message.kind,
                   language=message.language, customer_id=message.customer_id,
                   ticket_id=message.ticket_id, payload=dict(message.payload or {}),
                   entry=chat_history.outgoing_entry(message))


class Delivery:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.lanes = Lanes()
        self._tasks: set[asyncio.Task[None]] = set()
        self._again: set[str] = set()  # woken while being delivered: look once more after
        # turns' deliveries being recorded, by conversation: a lease waits for its own
        self._recording: dict[asyncio.Task[None], str] = {}
        gateway.deliver_now = self.conversation
        gateway.reachable_here = self.reachable_here
        gateway.settle_deliveries = self.settle

    async def conversation(self, conversation_id: str,
                           leased: list[OutboxMessage] | None = None, *,
                           ours: bool = False) -> None:
        """Deliver everything due for one conversation, stopping at the first failure.

        ``leased``: rows the caller queued born leased to this process (the turn's answers),
        sent first without a lease of their own. ``ours``: the caller already knows this
        gateway should (the poller checked the rows' age), so no query asks again.
        """
        first = [Row.of(message) for message in leased] if leased else None
        async with self.lanes.hold(conversation_id):
            if first is None and not ours and not await self._for_us(conversation_id):
                return
            while True:
                self._again.discard(conversation_id)
                if not await self._rounds(conversation_id, first) or \
                        conversation_id not in self._again:
                    return
                first = None

    async def _rounds(self, conversation_id: str, leased: list[Row] | None = None) -> bool:
        """Lease and send until nothing is due; False after a failure (the rest waits).

        What a lease sent is recorded in one transaction after it (a turn's two or three
        answers: one commit, not one each), and another lease follows only when this one may
        have left something behind: it was full, or a triggered intent queued new rows. Rows
        queued meanwhile by others wake this conversation again (:meth:`wake`). Rows already
        ``leased`` (born so) are the first round."""
        gw = self.gateway
        for _round in range(20):
            born = leased is not None
            if not born:  # rows sent but not yet recorded would hold back everything behind
                await self._records_landed(conversation_id)
            rows = leased if leased is not None else await gw.db(
                lambda s: [Row.of(m) for m in outbox.lease_conversation(
                    s, conversation_id=conversation_id, lease_seconds=gw.settings.lease_seconds,
                    limit=LEASE_LIMIT)])
            leased = None
            if not rows:
                return True
            sent: list[Row] = []
            again = len(rows) >= LEASE_LIMIT
            for row in rows:
                done = await self._one(row)
                if done is SENT:
                    sent.append(row)
                    continue
                if done is REPLACED:
                    again = True  # the assistant's own words were queued: send them next
                    continue
                await self._record_delivery(sent)
                await gw.db(lambda s: outbox.hold_behind(
                    s, failed_id=row.id, message_ids=[r.id for r in rows]))
                return False
            if born:  # a turn's answers: its customer is not kept waiting for the record
                self._record_aside(conversation_id, sent)
            else:
                await self._record_delivery(sent)
            if not again:
                return True
        return True

    def wake(self, conversation_id: str) -> None:
        """Another process queued rows for ``conversation_id``: deliver them now."""
        if not self.reachable_here(conversation_id):
            return  # a widget page open on another gateway: that one delivers
        if self.lanes.busy(conversation_id):
            self._again.add(conversation_id)  # the delivery under way looks once more
            return
        self._spawn(self.conversation(conversation_id))

    def reachable_here(self, conversation_id: str) -> bool:
        """Whether this process can reach the customer (a widget page must be open here)."""
        channel_name, external_id = customers.split_conversation_id(conversation_id)
        sockets = getattr(self.gateway.channels.get(channel_name), "sockets", None)
        return sockets is None or bool(sockets.get(external_id))

    def _young(self, created_at: object) -> bool:
        handover = timedelta(seconds=self.gateway.settings.widget_handover)
        return isinstance(created_at, datetime) and created_at > utcnow() - handover

    async def _for_us(self, conversation_id: str) -> bool:
        """False to leave the conversation to the gateway with the customer's page open."""
        if self.reachable_here(conversation_id):
            return True

        def waiting_since(session: Session) -> datetime | None:
            oldest = outbox.oldest_pending(session, conversation_id=conversation_id)
            return oldest.created_at if oldest is not None else None

        return not self._young(await self.gateway.db(waiting_since))

    async def _one(self, row: Row) -> str | bool:
        """Send one leased row: SENT (to be recorded with its lease), REPLACED (the assistant
        said it in its own words, queued as new rows), or False (failed: it backs off)."""
        gw = self.gateway
        channel_name, external_id = customers.split_conversation_id(row.conversation_id)
        channel = gw.channels.get(channel_name)
        if channel is None:
            return await self._failed(row, f"channel {channel_name!r} is not running")
        if row.ticket_id is not None:
            over = await gw.db(lambda s: handoffs.is_over(
                s, conversation_id=row.conversation_id, ticket_id=row.ticket_id))
            if over:
                try:
                    await gw.hand_back(row.conversation_id)
                except Exception as exc:
                    return await self._failed(row, f"hand-back: {exc!r}")
        intent = row.payload.get("intent")
        if isinstance(intent, str) and intent:
            if await self._run_intent(row, intent):
                return REPLACED
        try:
            await channel.deliver(external_id, row.entry)
        except Exception as exc:
            gw.metrics.delivery_failures.labels(channel_name).inc()
            return await self._failed(row, repr(exc))
        gw.metrics.messages_out.labels(channel_name, row.kind).inc()
        return SENT

    def _record_aside(self, conversation_id: str, rows: list[Row]) -> None:
        """Record a turn's delivered answers beside the turn instead of inside it.

        The customer has the answers; the record is bookkeeping (its transaction was ~2 ms of
        a 27 ms turn at one conversation, on the path to the widget's ``handled`` and to the
        conversation's next message). The rows stay leased to this process until it lands,
        so nothing leases them again meanwhile; this conversation's next lease waits for it
        (the leased rows would hold back whatever was queued behind them, a ticket's receipt
        say), and :meth:`settle` waits for what is left when the gateway stops.
        """
        if not rows:
            return
        task = asyncio.create_task(self._record_delivery(rows))
        self._recording[task] = conversation_id
        task.add_done_callback(self._record_done)

    def _record_done(self, task: asyncio.Task[None]) -> None:
        self._recording.pop(task, None)
        if not task.cancelled() and task.exception() is not None:  # past the lease: re-sent
            log.error("a delivery could not be recorded", exc_info=task.exception())

    async def _records_landed(self, conversation_id: str) -> None:
        """Wait until this conversation's deliveries recorded beside their turns are in."""
        pending = [task for task, conversation in self._recording.items()
                   if conversation == conversation_id]
        if pending:
            await asyncio.wait(pending)

    async def settle(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` seconds) until every turn's delivery is recorded."""
        if not self._recording:
            return
        _done, unfinished = await asyncio.wait(list(self._recording), timeout=timeout)
        if unfinished:
            log.warning("%d delivery record(s) unfinished at stop: their rows are sent again "
                        "when the lease runs out", len(unfinished))

    async def _record_delivery(self, rows: list[Row]) -> None:
        """Record deliveries the customer already has (one transaction), retrying while the
        database is away.

        Giving up at once would leave the rows due when their lease runs out, and they would
        be sent again: the widget drops a repeated id, but a Telegram chat shows it twice.
        Only past the lease (another gateway may be sending them by then) does the error
        stand.
        """
        if not rows:
            return
        ids = [row.id for row in rows]

        def record(session: Session) -> None:
            outbox.mark_delivered_many(session, message_ids=ids)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gateway.settings.lease_seconds
        pause = RECORD_FIRST_PAUSE
        while True:
            try:
                await self.gateway.db(record)
                return
            except Exception as exc:
                if loop.time() + pause >= deadline:
                    raise
                log.warning("outbox %s delivered but cannot be recorded yet (%s); retrying",
                            ids, type(exc).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECORD_LAST_PAUSE)

    async def _run_intent(self, row: Row, intent: str) -> bool:
        """Let the assistant say it (CSAT, follow-up); False = show the row itself instead."""
        gw = self.gateway
        entities = row.payload.get("entities") or {}
        try:
            messages = await asyncio.wait_for(
                gw.rasa.trigger(row.conversation_id, intent, dict(entities)),
                timeout=gw.settings.rasa_timeout)
        except Exception as exc:
            log.warning("cannot run %s for %s (%r): sending the plain survey", intent,
                        row.conversation_id, exc)
            gw.metrics.errors.labels("rasa_trigger").inc()
            return False
        answers = rasa_rows(messages)
        if not answers:  # e.g. the conversation is handed off again: Rasa stays silent
            return False

        def work(session: Session) -> None:
            for text, payload in answers:
                outbox.enqueue(session, customer_id=row.customer_id,
                               conversation_id=row.conversation_id, kind="bot", text=text,
                               language=row.language, payload=payload, ticket_id=row.ticket_id)
            outbox.mark_replaced(session, message_id=row.id, hidden_key=chat_history.HIDDEN)

        await gw.db(work)
        return True

    async def _failed(self, row: Row, error: str) -> bool:
        log.info("delivery of outbox %s to %s failed: %s", row.id, row.conversation_id, error)
        await self.gateway.db(lambda s: outbox.mark_failed(s, message_id=row.id, error=error))
        return False

    # -- the poller --------------------------------------------------------------------------

    async def poll_once(self) -> int:
        """Start delivering every conversation with something due; returns how many.

        Rows queued without a conversation (a desk ticket's replies, order notices) first get
        their customer's newest channel identity, or wait (backing off) until there is one.
        """
        def due_conversations(session: Session) -> tuple[set[str], list[tuple[str, Any]]]:
            routed = outbox.route_waiting(session, limit=500)
            return routed, sorted(set(outbox.due_streams(session, limit=500)))

        routed, conversations = await self.gateway.db(due_conversations)
        started = 0
        for conversation, created_at in conversations:
            if self.lanes.busy(conversation):
                continue  # being delivered right now; it picks up what is new
            if not self.reachable_here(conversation) and (
                    self._young(created_at) or conversation in routed):
                continue  # for the gateway with the page open (a just-routed row counts as young)
            self._spawn(self.conversation(conversation, ours=True))
            started += 1
        return started

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.poll_once()
            except Exception:
                log.exception("outbox poll failed; trying again")
                self.gateway.metrics.errors.labels("outbox_poll").inc()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.gateway.settings.outbox_interval)
            except asyncio.TimeoutError:
                pass
        for task in list(self._tasks):
            task.cancel()

