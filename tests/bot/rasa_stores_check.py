"""Run by tests/bot/test_rasa_stores.py inside .venv-rasa: Kefu's Redis stores beside Rasa's own.

``python rasa_stores_check.py <redis url>`` prints one JSON object of observations; the test
asserts on them. Rasa's own RedisTrackerStore gets the same saves as Kefu's, so "answers as
Rasa's store does" is checked against Rasa itself, not against a copy of its rules.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

from rasa.core.lock_store import LockError
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, BotUttered, SessionStarted, SlotSet,
                                     UserUttered)
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_lock_store import RedisMutexLockStore
from bot.rasa_tracker_store import AppendingRedisTrackerStore

DOMAIN = Domain.from_dict({
    "intents": ["greet", "order_status"],
    "slots": {"language": {"type": "text", "mappings": [{"type": "custom"}]}},
    "responses": {"utter_greet": [{"text": "hi"}]},
})


def turn(text: str, language: str) -> list:
    return [UserUttered(text, {"name": "greet", "confidence": 1.0}),
            SlotSet("language", language), ActionExecuted("utter_greet"), BotUttered("hi"),
            ActionExecuted("action_listen")]


def new_session() -> list:
    return [ActionExecuted("action_session_start"), SessionStarted(),
            SlotSet("language", "en"), ActionExecuted("action_listen")]


def names(tracker) -> list[str]:
    return [f"{e.type_name}:{getattr(e, 'action_name', None) or getattr(e, 'text', None) or ''}"
            for e in tracker.events]


async def trackers(url: str) -> dict:
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    ours = AppendingRedisTrackerStore(DOMAIN, host=parts.hostname, port=parts.port, db=db,
                                      key_prefix="kefutracker")
    stock = RedisTrackerStore(DOMAIN, host=parts.hostname, port=parts.port, db=db,
                              key_prefix="stocktracker")
    out: dict = {}
    sender = "widget:v-1/ü"  # characters a Redis key and the keys() scan must survive
    for store in (ours, stock):
        tracker = await store.get_or_create_tracker(sender)
        for event in turn("你好", "zh"):
            tracker.update(event)
        await store.save(tracker)
        tracker = await store.retrieve(sender)
        for event in turn("hello", "en"):
            tracker.update(event)
        await store.save(tracker)
    raw = ours.red
    out["stored_after_two_turns"] = await raw.llen(ours._keys(sender)[0])
    out["same_after_two_turns"] = (names(await ours.retrieve(sender))
                                   == names(await stock.retrieve(sender)))
    # a stale tracker (an old copy) saving: only what Redis lacks is appended
    stale = await ours.retrieve(sender)
    setattr(stale, "_kefu_stored_events", 1)
    await ours.save(stale)
    out["stored_after_stale_save"] = await raw.llen(ours._keys(sender)[0])
    # a new session: answers hold the latest session only, the full tracker everything
    for store in (ours, stock):
        tracker = await store.retrieve(sender)
        for event in new_session() + turn("again", "en"):
            tracker.update(event)
        await store.save(tracker)
    latest, stock_latest = await ours.retrieve(sender), await stock.retrieve(sender)
    out["latest_session"] = names(latest)
    out["same_latest_session"] = names(latest) == names(stock_latest)
    out["latest_language"] = [latest.get_slot("language"), stock_latest.get_slot("language")]
    full, stock_full = (await ours.retrieve_full_tracker(sender),
                        await stock.retrieve_full_tracker(sender))
    out["full_events"] = [len(full.events), len(stock_full.events)]
    out["keys"] = sorted(await ours.keys())
    out["missing"] = await ours.retrieve("nobody") is None
    # a tracker Rasa's own store wrote under Kefu's prefix is read and moved to the list form
    legacy = RedisTrackerStore(DOMAIN, host=parts.hostname, port=parts.port, db=db,
                               key_prefix="kefutracker")
    old = await legacy.get_or_create_tracker("old")
    for event in turn("old", "zh") + new_session() + turn("newer", "en"):
        old.update(event)
    await legacy.save(old)
    expected = names(await legacy.retrieve("old"))
    out["legacy_latest"] = names(await ours.retrieve("old")) == expected
    out["legacy_key_left"] = bool(legacy.red.exists("kefutracker:tracker:old"))
    out["legacy_full"] = len((await ours.retrieve_full_tracker("old")).events) == len(old.events)
    # the cache: the tracker saved here answers the next turn, unless Redis moved on or the
    # tracker holds events never saved (a turn that broke)
    other = AppendingRedisTrackerStore(DOMAIN, host=parts.hostname, port=parts.port, db=db,
                                       key_prefix="kefutracker")  # a second Rasa server
    mine = await ours.retrieve("cached")
    mine = mine or await ours.create_tracker("cached")
    for event in turn("一", "zh"):
        mine.update(event)
    await ours.save(mine)
    out["cache_hit"] = await ours.retrieve("cached") is mine
    theirs = await other.retrieve("cached")
    for event in turn("two", "en"):
        theirs.update(event)
    await other.save(theirs)
    fresh = await ours.retrieve("cached")
    out["cache_sees_other_server"] = fresh is not mine and names(fresh) == names(theirs)
    for event in turn("broken", "en"):
        fresh.update(event)  # never saved
    rebuilt = await ours.retrieve("cached")
    out["cache_drops_unsaved"] = rebuilt is not fresh and names(rebuilt) == names(theirs)
    await other.red.aclose() if hasattr(other.red, "aclose") else await other.red.close()
    await raw.aclose() if hasattr(raw, "aclose") else await raw.close()
    return out


async def locks(url: str) -> dict:
    parts = urlsplit(url)
    config = EndpointConfig(url=parts.hostname, port=parts.port,
                            db=int(parts.path.lstrip("/") or 0), key_prefix="kefulock",
                            type="bot.rasa_lock_store.RedisMutexLockStore")
    one, two = RedisMutexLockStore(config), RedisMutexLockStore(config)  # two Rasa servers
    order: list[str] = []

    async def turn_of(store: RedisMutexLockStore, name: str) -> None:
        async with store.lock("c-1"):
            order.append(f"{name}+")
            await asyncio.sleep(0.05)
            order.append(f"{name}-")

    await asyncio.gather(*(turn_of(store, f"t{i}") for i, store in
                           enumerate([one, two, one, two])))
    out: dict = {"serial": all(order[i][:-1] == order[i + 1][:-1]
                               for i in range(0, len(order), 2)), "turns": len(order) // 2}
    # a lock another turn holds is not freed by a turn whose own lock lapsed
    async with one.lock("c-2", lock_lifetime=0.1):
        await asyncio.sleep(0.2)  # lapsed: someone else takes it
        await two.red.set("kefulock:c-2", "someone-else")
    out["foreign_kept"] = await two.red.get("kefulock:c-2") == "someone-else"
    started = time.monotonic()
    try:
        async with two.lock("c-2", lock_lifetime=0.3):
            out["waited_for_held"] = False
    except LockError:
        out["waited_for_held"] = time.monotonic() - started >= 0.3
    out["left_after_turns"] = await one.red.exists("kefulock:c-1")
    # Redis dropped every connection mid-turn (as a restart does): the release still lands
    async with one.lock("c-3"):
        await two.red.execute_command("CLIENT", "KILL", "TYPE", "normal")
    out["released_after_drop"] = not await two.red.exists("kefulock:c-3")
    return out


async def outage() -> dict:
    """A turn that begins while Redis is down (connections refused, as during a restart) and
    Redis is back 0.6 s later: the lock and the tracker are still had, no error."""
    server = shutil.which("redis-server")
    if server is None:
        return {"skipped": "no redis-server"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = EndpointConfig(url="127.0.0.1", port=port, db=0, key_prefix="kefulock",
                            type="bot.rasa_lock_store.RedisMutexLockStore")
    lock_store = RedisMutexLockStore(config)
    tracker_store = AppendingRedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, db=0,
                                               key_prefix="kefutracker")
    started: list[subprocess.Popen] = []

    async def start_later() -> None:
        await asyncio.sleep(0.6)
        started.append(subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    out: dict = {}
    starter = asyncio.create_task(start_later())
    try:
        try:
            async with lock_store.lock("c-5"):
                tracker = await tracker_store.get_or_create_tracker("c-5")
                out["turn_after_outage"] = tracker.sender_id == "c-5"
        except Exception as exc:  # what the turn would have answered: a 500
            out["turn_after_outage"] = f"{type(exc).__name__}: {exc}"
        await starter
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=10)
    return out


async def main(url: str) -> None:
    print(json.dumps({"trackers": await trackers(url), "locks": await locks(url),
                      "outage": await outage()}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
