"""Rasa's trackers in Redis as lists of events: a turn appends what it added, nothing more.

Runs inside ``.venv-rasa`` (endpoints: ``type: bot.rasa_tracker_store.AppendingRedisTrackerStore``,
written by ``bot/rasa_config.py`` whenever Rasa has Redis). Why not Rasa 3.6's own
``RedisTrackerStore``: it keeps a conversation as one JSON document, and every save reads it
back, rebuilds the tracker from it twice (deserialise, then ``travel_back_in_time`` to merge),
serialises the whole conversation and writes it again, all with the synchronous redis client
inside Rasa's event loop. Measured on the cluster, that was ~30 ms a turn with the loop
blocked (docs/performance.md). Here a conversation is two keys:

- ``<prefix>:<sender>:events``, a list with one JSON event per item, every session;
- ``<prefix>:<sender>:session``, the list index where the latest session starts (Rasa
  answers with the latest session only, as its own Redis store does).

A save appends the events the tracker has beyond what the list holds for its session, in one
Lua call that checks that count first (if it changed meanwhile, the save learns the stored count
and appends from there, like Rasa's SQL store); a read is one Lua call too. Both go through
redis-py's asyncio client, so a Redis round trip no longer stops every other conversation of
the process. Turns of one conversation stay serial through the lock store
(``bot/rasa_lock_store.py``). Trackers written by Rasa's own Redis store (``<prefix>:<sender>``,
one document) are still read, and are moved to the list form by their next save.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SerializedTrackerAsText, TrackerStore
from redis import asyncio as aioredis

log = logging.getLogger("kefu.rasa.tracker_store")

STORED = "_kefu_stored_events"  # on a tracker: its latest session's events Redis holds

READ_SESSION = """
local start = tonumber(redis.call('GET', KEYS[2]) or '0')
return redis.call('LRANGE', KEYS[1], start, -1)
"""

# ARGV: events the caller believes the latest session holds, ttl seconds (0: none), offset of
# a new session's start among the new events (-1: none), the new events
APPEND = """
local start = tonumber(redis.call('GET', KEYS[2]) or '0')
local length = redis.call('LLEN', KEYS[1])
if length - start ~= tonumber(ARGV[1]) then
  return {0, length - start}
end
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if tonumber(ARGV[3]) >= 0 then
  redis.call('SET', KEYS[2], length + tonumber(ARGV[3]))
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {1, length - start + #ARGV - 3}
"""


def session_start_offset(events: list[dict[str, Any]]) -> int:
    """Index of the last ``action_session_start`` among ``events``; -1 when none."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") == ActionExecuted.type_name and \
                event.get("name") == ACTION_SESSION_START_NAME:
            return index
    return -1


class AppendingRedisTrackerStore(TrackerStore, SerializedTrackerAsText):
    """Rasa's tracker store over Redis lists; see the module's docstring for the layout."""

    def __init__(self, domain: Domain, host: str = "localhost", port: int = 6379, db: int = 0,
                 username: str | None = None, password: str | None = None,
                 event_broker: EventBroker | None = None, record_exp: float | None = None,
                 key_prefix: str | None = None, use_ssl: bool = False,
                 **kwargs: Any) -> None:
        self.red = aioredis.Redis(host=host, port=port, db=db, username=username,
                                  password=password, ssl=use_ssl, decode_responses=True)
        self.record_exp = record_exp
        self.key_prefix = key_prefix or "tracker"
        self._read = self.red.register_script(READ_SESSION)
        self._append = self.red.register_script(APPEND)
        super().__init__(domain, event_broker, **kwargs)

    def _keys(self, sender_id: str) -> list[str]:
        base = f"{self.key_prefix}:{quote(sender_id, safe='')}"
        return [f"{base}:events", f"{base}:session"]

    def _legacy_key(self, sender_id: str) -> str:
        return f"{self.key_prefix}:tracker:{sender_id}"  # Rasa's RedisTrackerStore's key

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Append the events the latest session has beyond what Redis holds for it."""
        await self.stream_events(tracker)
        events = [event.as_dict() for event in tracker.events]
        count = await self._append_events(tracker.sender_id, events,
                                          known=getattr(tracker, STORED, 0),
                                          ttl=int(timeout or self.record_exp or 0))
        setattr(tracker, STORED, count)

    async def _append_events(self, sender_id: str, events: list[dict[str, Any]], *, known: int,
                             ttl: int) -> int:
        """Append ``events[known:]``; if Redis holds another count, from that count on."""
        for _ in range(3):
            new = events[known:]
            done, count = await self._append(
                keys=self._keys(sender_id),
                args=[known, ttl, session_start_offset(new), *map(json.dumps, new)])
            if done:
                return int(count)
            known = min(int(count), len(events))
        raise RuntimeError(f"the tracker of {sender_id} keeps changing under its save")

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The latest session's tracker (as Rasa's own stores answer)."""
        stored = await self._read(keys=self._keys(sender_id))
        if not stored and await self._migrate(sender_id):
            stored = await self._read(keys=self._keys(sender_id))
        return self._tracker(sender_id, stored) if stored else None

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """Every session's events."""
        stored = await self.red.lrange(self._keys(sender_id)[0], 0, -1)
        if not stored and await self._migrate(sender_id):
            stored = await self.red.lrange(self._keys(sender_id)[0], 0, -1)
        return self._tracker(sender_id, stored) if stored else None

    def _tracker(self, sender_id: str, stored: list[str]) -> DialogueStateTracker:
        tracker = DialogueStateTracker.from_dict(
            sender_id, [json.loads(item) for item in stored], self.domain.slots)
        setattr(tracker, STORED, len(stored))
        return tracker

    async def _migrate(self, sender_id: str) -> bool:
        """Move a tracker Rasa's own Redis store wrote (one JSON document) to the list form."""
        document = await self.red.get(self._legacy_key(sender_id))
        if document is None:
            return False
        tracker = self.deserialise_tracker(sender_id, document)
        if tracker is None:
            return False
        events = [event.as_dict() for event in tracker.events]
        # every session's events; the session key then points at the latest one's start
        await self._append_events(sender_id, events, known=0, ttl=int(self.record_exp or 0))
        await self.red.delete(self._legacy_key(sender_id))
        log.info("moved the tracker of %s to the list form", sender_id)
        return True

    async def keys(self) -> Iterable[str]:
        """Conversation ids with a tracker (list form), for Rasa's ``/conversations``."""
        suffix = ":events"
        found = []
        async for key in self.red.scan_iter(match=f"{self.key_prefix}:*{suffix}"):
            sender = key[len(self.key_prefix) + 1:-len(suffix)]
            if ":" not in sender:  # a quoted sender id never holds ':'
                found.append(unquote(sender))
        return found
