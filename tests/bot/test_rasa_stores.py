"""Kefu's Redis tracker and lock stores inside the real Rasa, beside Rasa's own Redis store.

The checks run in ``.venv-rasa`` (tests/bot/rasa_stores_check.py) against the test Redis; this
module asserts on what they saw.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.assistant import RASA_PYTHON, rasa_env
from bot.rasa_config import ROOT
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="needs .venv-rasa (make setup)")


@pytest.fixture(scope="module")
def seen() -> dict:
    if not REDIS_URL:
        pytest.skip("Redis test (set KEFU_TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        result = subprocess.run(
            [str(RASA_PYTHON), str(ROOT / "tests" / "bot" / "rasa_stores_check.py"), REDIS_URL],
            cwd=ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300)
    finally:
        client.flushdb()
        client.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_save_appends_only_the_new_events(seen: dict) -> None:
    trackers = seen["trackers"]
    assert trackers["stored_after_two_turns"] == 11  # action_listen + two turns of 5 events
    assert trackers["stored_after_stale_save"] == 11  # an old copy saved again adds nothing


def test_answers_are_rasas_own_stores(seen: dict) -> None:
    trackers = seen["trackers"]
    assert trackers["same_after_two_turns"] and trackers["same_latest_session"]
    assert trackers["latest_session"][:2] == ["action:action_session_start", "session_started:"]
    assert trackers["latest_language"] == ["en", "en"]
    assert trackers["full_events"][0] == trackers["full_events"][1] == 20
    assert trackers["keys"] == ["widget:v-1/ü"] and trackers["missing"]


def test_a_tracker_rasas_store_wrote_is_read_and_moved(seen: dict) -> None:
    trackers = seen["trackers"]
    assert trackers["legacy_latest"] and trackers["legacy_full"]
    assert not trackers["legacy_key_left"]


def test_a_server_answers_with_the_tracker_it_saved_while_redis_agrees(seen: dict) -> None:
    trackers = seen["trackers"]
    assert trackers["cache_hit"]
    assert trackers["cache_sees_other_server"]  # another server took a turn: rebuilt
    assert trackers["cache_drops_unsaved"]  # a turn broke before its save: rebuilt


def test_turns_of_one_conversation_take_the_lock_in_turn(seen: dict) -> None:
    locks = seen["locks"]
    assert locks["serial"] and locks["turns"] == 4  # two stores, as two Rasa servers
    assert locks["left_after_turns"] == 0
    assert locks["foreign_kept"]  # a lapsed holder does not free the next holder's lock
    assert locks["waited_for_held"]  # LockError only after waiting the lock's lifetime
    assert locks["released_after_drop"]  # a connection Redis closed is not the end of it


def test_a_turn_that_begins_while_redis_restarts_waits_for_it(seen: dict) -> None:
    """Connections refused for 0.6 s (Redis starting again): the lock and the tracker are had
    once it is back, instead of the turn failing with a 500 (an apology and a ticket)."""
    outage = seen["outage"]
    if "skipped" in outage:
        pytest.skip(outage["skipped"])
    assert outage["turn_after_outage"] is True, outage["turn_after_outage"]
