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
(``bot/rasa_lock_store.py``). Trackers written by Rasa's own Redis store
(``<prefix>:tracker:<sender>``, one document) are still read, and moved to the list form then.

The gateway keeps a conversation on one Rasa server while it is up, so each server also keeps
the trackers it saved last (:data:`CACHED` of them) and answers the next turn with the same
object when Redis still holds exactly what it was built from: a read is then one Lua call that
returns two numbers, and rebuilding the tracker (json and a replay of every event, ~2 ms for a
6-turn conversation, more as it grows) is skipped.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SerializedTrackerAsText, TrackerStore

from bot.rasa_lock_store import client

log = logging.getLogger("kefu.rasa.tracker_store")

STORED = "_kefu_stored_events"  # on a tracker: its latest session's events Redis holds

# ARGV: the start and length the caller's copy was built from; the events only if they changed
READ_SESSION = """
local start = tonumber(redis.call('GET', KEYS[2]) or '0')
local length = redis.call('LLEN', KEYS[1])
if start == tonumber(ARGV[1]) and length == tonumber(ARGV[2]) then
  return {start, length}
end
local found = redis.call('LRANGE', KEYS[1], start, -1)
table.insert(found, 1, length)
table.insert(found, 1, start)
return found
"""

# ARGV: events the caller believes the latest session holds, ttl seconds (0: none), offset of
# a new session's start among the new events (-1: none), the new events. Answers
# {1, start, length} when appended, {0, events the latest session holds} when the count was off
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
  start = length + tonumber(ARGV[3])
  redis.call('SET', KEYS[2], start)
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {1, start, length + #ARGV - 3}
"""
CACHED = 1000  # trackers kept per process (a 6-turn conversation's: ~55 events)


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
        self.red = client(host=host, port=port, db=db, username=username, password=password,
                          use_ssl=use_ssl)  # retried after a Redis restart
        self.record_exp = record_exp
        self.key_prefix = key_prefix or "tracker"
        self._read = self.red.register_script(READ_SESSION)
        self._append = self.red.register_script(APPEND)
        # sender -> (tracker, start, length): the latest session's tracker as last saved here
        self._cache: OrderedDict[str, tuple[DialogueStateTracker, int, int]] = OrderedDict()
        super().__init__(domain, event_broker, **kwargs)

    def _keys(self, sender_id: str) -> list[str]:
        base = f"{self.key_prefix}:{quote(sender_id, safe='')}"
        return [f"{base}:events", f"{base}:session"]

    def _legacy_key(self, sender_id: str) -> str:
        return f"{self.key_prefix}:tracker:{sender_id}"  # Rasa's RedisTrackerStore's key

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Append the events the latest session has beyond what Redis holds for it."""
        await self.stream_events(tracker)
        events = list(tracker.events)
        start, length = await self._append_events(
            tracker.sender_id, events, known=getattr(tracker, STORED, 0),
            ttl=int(timeout or self.record_exp or 0))
        setattr(tracker, STORED, length - start)
        if length - start == len(events):  # exactly what Redis holds: the next turn's copy
            self._remember(tracker.sender_id, tracker, start, length)

    async def _append_events(self, sender_id: str, events: list[Event], *, known: int,
                             ttl: int) -> tuple[int, int]:
        """Append ``events[known:]``; if Redis holds another count, from that count on.
        Returns where the latest session starts in the list and the list's length."""
        for _ in range(3):
            new = [event.as_dict() for event in events[known:]]
            answer = await self._append(
                keys=self._keys(sender_id),
                args=[known, ttl, session_start_offset(new), *map(json.dumps, new)])
            if answer[0]:
                return int(answer[1]), int(answer[2])
            known = min(int(answer[1]), len(events))
        raise RuntimeError(f"the tracker of {sender_id} keeps changing under its save")

    def _remember(self, sender_id: str, tracker: DialogueStateTracker, start: int,
                  length: int) -> None:
        self._cache[sender_id] = (tracker, start, length)
        self._cache.move_to_end(sender_id)
        while len(self._cache) > CACHED:
            self._cache.popitem(last=False)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The latest session's tracker (as Rasa's own stores answer).

        The tracker this process saved last is answered again, without rebuilding it from its
        events (~2 ms for a 6-turn conversation), when Redis still holds exactly what it was
        built from (no other server took a turn) and it holds nothing unsaved (a turn that
        broke before its save); otherwise it is rebuilt from Redis.
        """
        cached = self._cache.pop(sender_id, None)
        if cached is not None and len(cached[0].events) != cached[2] - cached[1]:
            cached = None  # it holds events never saved
        start, length = (cached[1], cached[2]) if cached is not None else (-1, -1)
        answer = await self._read(keys=self._keys(sender_id), args=[start, length])
        if cached is not None and len(answer) == 2:
            self._cache[sender_id] = cached  # the newest again
            return cached[0]
        stored = answer[2:] if len(answer) > 2 else []
        if not stored and await self._migrate(sender_id):
            return await self.retrieve(sender_id)
        if not stored:
            return None
        tracker = self._tracker(sender_id, stored)
        self._remember(sender_id, tracker, int(answer[0]), int(answer[1]))
        return tracker

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
        # every session's events; the session key then points at the latest one's start
        await self._append_events(sender_id, list(tracker.events), known=0,
                                  ttl=int(self.record_exp or 0))
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
