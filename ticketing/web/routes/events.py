"""Live updates: the Server-Sent Events stream (``/events``, ``/api/v1/events``) and who else
has a ticket open (``/api/v1/tickets/{id}/viewers``).

A stream starts at "now", or where its ``Last-Event-ID`` (a cursor, see
:mod:`ticketing.desk.live_events`) left off, and sends what is new about the tickets the
signed-in agent may see plus their own notifications. Named events:

``ready``         first event; its id is the starting cursor; data ``{mode, cursor}``
``ticket``        a ticket event (created, claimed, transferred, escalated, state changes, …)
``message``       a thread message (``customer_message``, ``agent_reply``, ``note``, …)
``notification``  one of the agent's notifications (``sla_warning``, ``sla_breach``, …)
``presence``      with ``?ticket=<id>``: who else has that ticket open (``viewers``, ``text``)
``resync``        the cursor could not be resumed: reload the page

Data is JSON: ``key`` (unique per row), ``source``, ``kind``, ``ticket_id``, ``number``,
``text`` (in the agent's language), ``at``, ``actor_id``, ``toast``. Only the last event of a
batch carries the id (the cursor after the batch), so a stream cut mid-batch resumes before
it; pages drop an event whose ``key`` they have seen. Comments every 15 s keep proxies open;
the stream ends after :data:`MAX_STREAM_SECONDS` (the browser reconnects with its cursor) or
when the sign-in is no longer valid.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse, ServerSentEvent

from ticketing.core.errors import AuthenticationFailed
from ticketing.desk import access, live_events
from ticketing.web import live
from ticketing.web.api import Id, errors
from ticketing.web.deps import Desk, Principal, desk_of, principal
from ticketing.web.texts import ui

log = logging.getLogger(__name__)
router = APIRouter()

HEARTBEAT_SECONDS = 15
SEND_TIMEOUT_SECONDS = 30  # a client that reads nothing for this long is dropped
RETRY_MS = 1000  # how soon a browser reconnects after the stream ends
MAX_STREAM_SECONDS = 15 * 60
RECHECK_SECONDS = 60  # the session or token is checked again this often
PRESENCE_CHECK_SECONDS = 5.0  # viewers re-read at least this often (other processes, no Redis)
MAX_ROUNDS_PER_WAKE = 10  # batches read back to back before waiting again
PRESENCE_ERRORS = (*live_events.PUBLISH_ERRORS, SQLAlchemyError)


def _event(kind: str, data: dict[str, object], *, event_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                           event=kind, id=event_id)


def _presence_data(who: Principal, ticket_id: Id,
                   viewers: list[dict[str, object]]) -> dict[str, object]:
    others = [v for v in viewers if v["id"] != who.agent_id]
    names = ("、" if who.language == "zh" else ", ").join(str(v["name"]) for v in others)
    key = "live.also_viewing" if len(others) == 1 else "live.also_viewing_many"
    return {"ticket_id": ticket_id, "viewers": viewers,
            "text": ui(key, who.language).format(names=names) if others else ""}


class _Stream:
    """One connection: its follower, its presence beat, its wake-ups."""

    def __init__(self, request: Request, who: Principal, *, ticket_id: Id | None,
                 last_event_id: str | None) -> None:
        self.request = request
        self.desk = desk_of(request)
        self.who = who
        self.ticket_id = ticket_id
        self.last_event_id = last_event_id
        self.connection = secrets.token_hex(8)
        self.presence = live.presence_for(self.desk)
        self.follower: live_events.Follower | None = None
        self.sent_cursor = ""
        self.shown_viewers: list[dict[str, object]] | None = None

    # --- database and Redis work, in worker threads -------------------------------------------
    def _start(self) -> bool:
        with self.desk.session_factory() as session:
            cursor, resync = live_events.start_at(session, self.last_event_id)
        self.follower = live_events.Follower(cursor)
        return resync

    def _read(self) -> list[live_events.LiveEvent]:
        assert self.follower is not None
        with self.desk.session_factory() as session:
            return self.follower.read(session, agent_id=self.who.agent_id,
                                      language=self.who.language)

    def _beat(self, *, publish: bool) -> None:
        try:
            self.presence.beat(ticket_id=self.ticket_id, agent_id=self.who.agent_id,
                               connection=self.connection, now=self.desk.clock())
        except PRESENCE_ERRORS as exc:  # the hint is a nicety: the stream goes on without it
            log.warning("presence beat failed for ticket %s: %s", self.ticket_id, exc)
            return
        if publish and self.desk.redis is not None:
            live_events.publish(self.desk.redis, live.PRESENCE)

    def _leave(self) -> None:
        self.presence.leave(ticket_id=self.ticket_id, agent_id=self.who.agent_id,
                            connection=self.connection)
        if self.desk.redis is not None:
            live_events.publish(self.desk.redis, live.PRESENCE)

    def _viewers(self) -> list[dict[str, object]]:
        try:
            ids = self.presence.viewers(ticket_id=self.ticket_id, now=self.desk.clock())
        except PRESENCE_ERRORS as exc:
            log.warning("viewers of ticket %s unknown: %s", self.ticket_id, exc)
            ids = []
        with self.desk.session_factory() as session:
            return live.viewer_names(session, ids)

    # --- the stream ----------------------------------------------------------------------------
    async def _feed(self) -> AsyncIterator[ServerSentEvent]:
        """Everything new, read in batches until caught up (bounded per wake-up)."""
        assert self.follower is not None
        for _ in range(MAX_ROUNDS_PER_WAKE):
            found = await anyio.to_thread.run_sync(self._read)
            cursor = self.follower.cursor.encode()
            for index, item in enumerate(found):
                last = index == len(found) - 1
                yield _event(item.source, item.as_dict(), event_id=cursor if last else None)
            if not found and cursor != self.sent_cursor:
                yield ServerSentEvent(id=cursor)  # an id alone moves the browser's cursor
            self.sent_cursor = cursor
            if not self.follower.more:
                return

    async def _presence(self) -> AsyncIterator[ServerSentEvent]:
        viewers = await anyio.to_thread.run_sync(self._viewers)
        if viewers != self.shown_viewers:
            self.shown_viewers = viewers
            yield _event("presence", _presence_data(self.who, self.ticket_id or 0, viewers))

    async def _still_signed_in(self) -> bool:
        try:
            self.who = await principal(self.request)
        except AuthenticationFailed:
            return False
        return True

    async def run(self) -> AsyncIterator[ServerSentEvent]:
        hub = live.hub_for(self.desk)
        hub.attach()
        leave = True
        try:
            resync = await anyio.to_thread.run_sync(self._start)
            assert self.follower is not None
            self.sent_cursor = self.follower.cursor.encode()
            if resync:
                yield _event("resync", {"cursor": self.sent_cursor}, event_id=self.sent_cursor)
            yield ServerSentEvent(json.dumps({"mode": hub.mode, "cursor": self.sent_cursor}),
                                  event="ready", id=self.sent_cursor, retry=RETRY_MS)
            started = time.monotonic()
            ends = started + MAX_STREAM_SECONDS
            recheck_due = started + RECHECK_SECONDS
            beat_due = presence_due = started
            presence_seen = -1
            while True:
                if time.monotonic() >= ends:
                    leave = False  # the browser reconnects at once: its new beat takes over
                    return
                seen = hub.version  # taken first: a wake-up during the work below is not lost
                now = time.monotonic()
                if now >= recheck_due:
                    if not await self._still_signed_in():
                        return
                    recheck_due = now + RECHECK_SECONDS
                if self.ticket_id is not None:
                    if now >= beat_due:
                        first = presence_seen == -1
                        await anyio.to_thread.run_sync(lambda: self._beat(publish=first))
                        if first:
                            hub.poke_presence()  # the other pages of this process, at once
                        beat_due = now + live.PRESENCE_BEAT
                    if now >= presence_due or presence_seen != hub.presence_version:
                        presence_seen = hub.presence_version
                        async for item in self._presence():
                            yield item
                        presence_due = now + PRESENCE_CHECK_SECONDS
                if hub.head is None or self.follower.more or self.follower.cursor.behind(hub.head):
                    async for item in self._feed():
                        yield item
                due = [ends, recheck_due] + ([beat_due, presence_due] if self.ticket_id else [])
                if any(m.gaps for m in self.follower.cursor.marks):
                    due.append(time.monotonic() + live.POLL_INTERVAL)  # a late commit moves no head
                if self.follower.more:
                    due.append(0)  # a backlog: read on after a breath
                await hub.wait(seen, max(min(due) - time.monotonic(), 0.05))
        finally:
            hub.detach()
            if self.ticket_id is not None and leave:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    try:
                        await anyio.to_thread.run_sync(self._leave)
                        hub.poke_presence()
                    except Exception as exc:  # noqa: BLE001 - the page is gone either way
                        log.warning("presence not cleared for ticket %s: %s", self.ticket_id, exc)


def _check_ticket(desk: Desk, who: Principal, ticket_id: Id) -> None:
    with desk.unit_of_work() as session:
        access.require_ticket(session, who.agent(session), ticket_id)


STREAM_DOC = {200: {"content": {"text/event-stream": {}},
                    "description": "Server-Sent Events (see the module documentation)"},
              **errors(404)}


@router.get("/events", include_in_schema=False)
@router.get("/api/v1/events", tags=["live"], response_class=EventSourceResponse,
            responses=STREAM_DOC)
async def events(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    ticket: Annotated[Id | None, Query(description="also stream who views it")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=4000)] = None,
    cursor: Annotated[str | None, Query(max_length=4000,
                                        description="resume here when no Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Live updates for the signed-in agent: ticket events, thread messages and their own
    notifications about the tickets they may see, from ``Last-Event-ID`` or now.

    Events ``ready``, ``ticket``, ``message``, ``notification``, ``presence`` (with
    ``?ticket=``) and ``resync``; data is JSON (``key``, ``source``, ``kind``, ``ticket_id``,
    ``number``, ``text``, ``at``, ``actor_id``, ``toast``). The event id is the cursor to
    resume from."""
    desk = desk_of(request)
    if ticket is not None:
        await anyio.to_thread.run_sync(_check_ticket, desk, who, ticket)
    stream = _Stream(request, who, ticket_id=ticket, last_event_id=last_event_id or cursor)
    return EventSourceResponse(stream.run(), ping=HEARTBEAT_SECONDS,
                               send_timeout=SEND_TIMEOUT_SECONDS)


class ViewerOut(BaseModel):
    id: int
    name: str


class ViewersOut(BaseModel):
    ticket_id: Id
    viewers: list[ViewerOut]


@router.get("/api/v1/tickets/{ticket_id}/viewers", response_model=ViewersOut, tags=["live"],
            responses=errors(404))
def viewers(request: Request, ticket_id: Id,
            who: Annotated[Principal, Depends(principal)]) -> ViewersOut:
    """Who has the ticket open in the desk now (seen in the last 30 s), the asker included."""
    desk = desk_of(request)
    _check_ticket(desk, who, ticket_id)
    # one transaction at a time: on SQLite each holds the write lock the presence table needs
    ids = live.presence_for(desk).viewers(ticket_id=ticket_id, now=desk.clock())
    with desk.session_factory() as session:
        found = live.viewer_names(session, ids)
    return ViewersOut(ticket_id=ticket_id, viewers=[ViewerOut(**v) for v in found])
