"""bot/rasa_server.py inside the real Rasa: the cached validator accepts and refuses as Rasa does."""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.assistant import RASA_PYTHON, rasa_env
from bot.rasa_config import ROOT

pytestmark = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="needs .venv-rasa (make setup)")

CHECK = r"""
import json, sys
import jsonschema
from rasa.core.actions.action import RemoteAction
stock = RemoteAction._validate_action_result
from bot import rasa_server
rasa_server.install()
assert RemoteAction._validate_action_result is not stock
action = RemoteAction("action_x", None)
out = []
for result in json.loads(sys.argv[1]):
    verdicts = []
    for check in (stock, RemoteAction._validate_action_result):
        try:
            verdicts.append(check(action, result))
        except jsonschema.ValidationError as error:
            verdicts.append(error.message)
    out.append(verdicts)
print(json.dumps(out))
"""

GOOD = {"events": [{"event": "slot", "name": "order_id", "value": "6012"},
                   {"event": "followup", "name": "action_listen"}],
        "responses": [{"text": "hi", "buttons": [{"title": "a", "payload": "/affirm"}]}]}
BAD_EVENT = {"events": [{"event": "slot", "value": 1}], "responses": []}
BAD_RESPONSES = {"events": [], "responses": "not a list"}


def test_the_cached_validator_gives_rasas_own_verdicts() -> None:
    cases = [GOOD, BAD_EVENT, BAD_RESPONSES, {}]
    result = subprocess.run([str(RASA_PYTHON), "-c", CHECK, json.dumps(cases)], cwd=ROOT,
                            env=rasa_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdicts[0] == [True, True]
    assert verdicts[3] == [True, True]
    for stock, cached in verdicts[1:3]:
        assert isinstance(stock, str) and stock == cached  # same error, same message
        assert "Failed to validate Action server response" in cached


PRAGMAS = r"""
import sqlalchemy, sys
from bot import rasa_server
rasa_server.install()
rasa_server.install()  # twice: one listener
engine = sqlalchemy.create_engine("sqlite:///" + sys.argv[1])
with engine.connect() as conn:
    print(conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
          conn.exec_driver_sql("PRAGMA synchronous").scalar())
"""


def test_rasas_sqlite_tracker_store_runs_in_wal_without_a_flush_per_commit(tmp_path) -> None:
    result = subprocess.run([str(RASA_PYTHON), "-c", PRAGMAS, str(tmp_path / "tracker.db")],
                            cwd=ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["wal", "1"]  # 1 = NORMAL


TRACKER_STORE = r"""
import asyncio, sys
from bot import rasa_server
rasa_server.install()
rasa_server.install()
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.core.events import SlotSet
store = SQLTrackerStore(db=sys.argv[1])
tracker = DialogueStateTracker("widget:x", [])
tracker.update(SlotSet("language", "en"))
asyncio.run(store.save(tracker))
again = asyncio.run(store.retrieve("widget:x"))
with store.engine.connect() as conn:
    mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
print(type(store.engine.pool).__name__, mode, [e.key for e in again.events if isinstance(e, SlotSet)])
"""


def test_the_sqlite_tracker_store_keeps_its_connections(tmp_path) -> None:
    result = subprocess.run([str(RASA_PYTHON), "-c", TRACKER_STORE, str(tmp_path / "t.db")],
                            cwd=ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "QueuePool wal ['language']"


ACTION_CALLS = r"""
import asyncio, json
from aiohttp import web
from bot import rasa_server
rasa_server.install()
from rasa.utils.endpoints import EndpointConfig

async def main():
    peers = []

    async def webhook(request):
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"events": [], "responses": []})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
    answers = [await endpoint.request(json={"next_action": "action_x"}) for _ in range(3)]
    same = endpoint.session().session is EndpointConfig(endpoint.url).session().session
    await runner.cleanup()
    try:  # the server is gone: the kept connection fails the call, it does not hang
        await endpoint.request(json={"next_action": "action_x"})
        gone = "answered"
    except Exception as exc:
        gone = type(exc).__name__
    # an action server starting again: refused for a moment, then the call goes through
    late = web.AppRunner(app)
    async def start_late():
        await asyncio.sleep(0.5)
        await late.setup()
        await web.TCPSite(late, "127.0.0.1", port).start()
    starter = asyncio.ensure_future(start_late())
    back = await endpoint.request(json={"next_action": "action_x"})
    await starter
    await late.cleanup()
    print(json.dumps({"connections": len(set(peers[:3])), "answer": answers[0], "same": same,
                      "gone": gone, "back": back}))

asyncio.run(main())
"""


def test_action_calls_keep_their_connection() -> None:
    result = subprocess.run([str(RASA_PYTHON), "-c", ACTION_CALLS], cwd=ROOT, env=rasa_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["connections"] == 1  # three calls, one connection
    assert seen["answer"] == {"events": [], "responses": []} and seen["same"]
    assert seen["gone"] not in ("answered", "")  # a dead server fails the call
    assert seen["back"] == {"events": [], "responses": []}  # refused, then answered
