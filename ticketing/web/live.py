"""Live updates in the desk web: one wake-up hub per process, and who has a ticket open.

:class:`LiveHub` tells every open stream of this process when to look at the database again.
With Redis it listens to :data:`ticketing.desk.live_events.CHANNEL` — one subscriber per
process, fanned out to its streams — and still reads the feed's head every few seconds in case
a wake-up was lost; without Redis it reads the head every :data:`POLL_INTERVAL` seconds. Either
way it is one small query per process, and only streams whose cursor is behind query their
rows. The hub runs while streams use it and stops with the last one.

Presence (the collision hint): each open ticket page beats every :data:`PRESENCE_BEAT`
seconds; a viewer counts for :data:`PRESENCE_TTL` seconds after its last beat. With Redis a
sorted set per ticket (member ``<agent id>:<connection>``, score = time of the beat), without
it the ``ticket_viewers`` table. Keyed by connection, so closing one of two tabs leaves the
other counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.models import Agent, TicketViewer
from ticketing.desk import live_events
from ticketing.web.deps import Desk

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between head reads without Redis
SAFETY_INTERVAL = 5.0  # … with Redis, in case a wake-up was lost
PRESENCE_TTL = 30.0
PRESENCE_BEAT = 10.0
PRESENCE = "presence"  # the wake-up message of a viewer who came or went
_HUB_KEY = "live_hub"


class LiveHub:
    """The wake-ups of one process's streams (one per event loop; see :func:`hub_for`)."""

    def __init__(self, session_factory: sessionmaker[Session], *, redis: Any = None,
                 channel: str = live_events.CHANNEL, poll_interval: float = POLL_INTERVAL,
                 safety_interval: float = SAFETY_INTERVAL) -> None:
        self.session_factory = session_factory
        self.redis = redis
        self.channel = channel
        self.poll_interval = poll_interval
        self.safety_interval = safety_interval
        self.loop = asyncio.get_running_loop()
        self.head: live_events.Cursor | None = None
        self.version = 0  # moves on every wake-up
        self.presence_version = 0  # moves when a viewer came or went
        self.subscribed = False  # the Redis listener is up: wake-ups come by pub/sub
        self._changed = asyncio.Event()
        self._poked = asyncio.Event()
        self._users = 0
        self._task: asyncio.Task[None] | None = None
        self._stop: threading.Event | None = None

    @property
    def mode(self) -> str:
        return "redis" if self.redis is not None else "poll"

    # --- streams come and go ------------------------------------------------------------------
    def attach(self) -> None:
        self._users += 1
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name="kefu-live-hub")
            if self.redis is not None:
                self._stop = threading.Event()
                threading.Thread(target=self._listen, args=(self._stop,), daemon=True,
                                 name="kefu-live-listener").start()

    def detach(self) -> None:
        self._users = max(self._users - 1, 0)
        if self._users == 0 and self._task is not None:
            self._task.cancel()
            self._task = None
            if self._stop is not None:
                self._stop.set()
                self._stop = None
            self.subscribed = False

    async def wait(self, seen: int, timeout: float) -> int:
        """Until the hub's version moves past ``seen`` or ``timeout`` ends; the version."""
        if self.version == seen and timeout > 0:
            changed = self._changed
            with anyio.move_on_after(timeout):
                await changed.wait()
        return self.version

    def poke(self) -> None:
        """Look at the database now (same loop only)."""
        self._poked.set()

    def poke_presence(self) -> None:
        """A viewer came or went: ticket pages re-read who is there (same loop only)."""
        self.presence_version += 1
        self._poked.set()

    # --- inside ---------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _read_head(self) -> live_events.Cursor:
        with self.session_factory() as session:
            return live_events.head(session)

    async def _run(self) -> None:
        while True:
            interval = self.safety_interval if self.subscribed else self.poll_interval
            poked = False
            with anyio.move_on_after(interval):
                await self._poked.wait()
                poked = True
            self._poked.clear()
            try:
                head = await anyio.to_thread.run_sync(self._read_head)
            except SQLAlchemyError as exc:
                log.warning("live hub could not read the feed head: %s", exc)
                continue
            if poked or head != self.head:
                self.head = head
                self._bump()

    def _from_thread(self, fn: Callable[[], None]) -> None:
        try:
            self.loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed: the process is stopping
            pass

    def _listen(self, stop: threading.Event) -> None:
        """The process's one subscriber (a thread: redis-py's blocking client)."""
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.subscribed = True
                self._from_thread(self.poke)  # (re)subscribed: whatever was missed, look once
                while not stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    data = message.get("data")
                    data = data.decode() if isinstance(data, bytes) else data
                    self._from_thread(self.poke_presence if data == PRESENCE else self.poke)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any Redis trouble
                self.subscribed = False
                if stop.is_set():
                    break
                log.warning("live wake-ups unavailable, polling the database: %s", exc)
                stop.wait(2.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001
                        pass
        self.subscribed = False


def hub_for(desk: Desk) -> LiveHub:
    """This process's hub for the running event loop (a new loop, e.g. in tests, gets its own)."""
    loop = asyncio.get_running_loop()
    hub = desk.extras.get(_HUB_KEY)
    if hub is None or hub.loop is not loop:
        hub = LiveHub(desk.session_factory, redis=desk.redis)
        desk.extras[_HUB_KEY] = hub
    return hub


# --- presence ------------------------------------------------------------------------------------
class Presence(Protocol):
    def beat(self, *, ticket_id: int, agent_id: int, connection: str, now: datetime) -> None: ...

    def leave(self, *, ticket_id: int, agent_id: int, connection: str) -> None: ...

    def viewers(self, *, ticket_id: int, now: datetime) -> list[int]: ...


class RedisPresence:
    """A sorted set per ticket: ``<agent id>:<connection>`` scored by the last beat."""

    def __init__(self, client: Any, *, ttl: float = PRESENCE_TTL,
                 prefix: str = "kefu:presence:ticket:") -> None:
        self.client = client
        self.ttl = ttl
        self.prefix = prefix

    def _key(self, ticket_id: int) -> str:
        return f"{self.prefix}{ticket_id}"

    def beat(self, *, ticket_id: int, agent_id: int, connection: str, now: datetime) -> None:
        key = self._key(ticket_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {f"{agent_id}:{connection}": now.timestamp()})
        pipe.expire(key, int(self.ttl * 2))
        pipe.execute()

    def leave(self, *, ticket_id: int, agent_id: int, connection: str) -> None:
        self.client.zrem(self._key(ticket_id), f"{agent_id}:{connection}")

    def viewers(self, *, ticket_id: int, now: datetime) -> list[int]:
        key = self._key(ticket_id)
        since = now.timestamp() - self.ttl
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", f"({since}")
        pipe.zrevrangebyscore(key, "+inf", since)  # the latest beat first
        members = pipe.execute()[1]
        ids = (str(m.decode() if isinstance(m, bytes) else m).partition(":")[0] for m in members)
        return list(dict.fromkeys(int(i) for i in ids if i.isdigit()))


class DatabasePresence:
    """The ``ticket_viewers`` table: one row per open ticket page, its last beat."""

    def __init__(self, session_factory: sessionmaker[Session], *,
                 ttl: float = PRESENCE_TTL) -> None:
        self.session_factory = session_factory
        self.ttl = ttl

    def beat(self, *, ticket_id: int, agent_id: int, connection: str, now: datetime) -> None:
        with self.session_factory.begin() as session:
            updated = session.execute(
                update(TicketViewer).where(TicketViewer.ticket_id == ticket_id,
                                           TicketViewer.agent_id == agent_id,
                                           TicketViewer.connection == connection)
                .values(seen_at=now).execution_options(synchronize_session=False)).rowcount
            if not updated:
                session.add(TicketViewer(ticket_id=ticket_id, agent_id=agent_id,
                                         connection=connection, seen_at=now))
                # a page closed without a goodbye (a crash) leaves a row: sweep old ones
                session.execute(delete(TicketViewer).where(
                    TicketViewer.seen_at < now - timedelta(seconds=self.ttl * 10)))

    def leave(self, *, ticket_id: int, agent_id: int, connection: str) -> None:
        with self.session_factory.begin() as session:
            session.execute(delete(TicketViewer).where(TicketViewer.ticket_id == ticket_id,
                                                       TicketViewer.agent_id == agent_id,
                                                       TicketViewer.connection == connection))

    def viewers(self, *, ticket_id: int, now: datetime) -> list[int]:
        with self.session_factory() as session:
            ids = session.scalars(
                select(TicketViewer.agent_id)
                .where(TicketViewer.ticket_id == ticket_id,
                       TicketViewer.seen_at >= now - timedelta(seconds=self.ttl))
                .order_by(TicketViewer.seen_at.desc()))
            return list(dict.fromkeys(ids))


def presence_for(desk: Desk) -> Presence:
    return RedisPresence(desk.redis) if desk.redis is not None else DatabasePresence(
        desk.session_factory)


def viewer_names(session: Session, agent_ids: list[int]) -> list[dict[str, object]]:
    """``[{id, name}]`` in the order given (unknown ids left out)."""
    if not agent_ids:
        return []
    query = select(Agent.id, Agent.display_name).where(Agent.id.in_(agent_ids))
    names = dict(session.execute(query).tuples().all())
    return [{"id": i, "name": names[i]} for i in agent_ids if i in names]
