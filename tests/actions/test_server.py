"""Kefu's action server (actions/server.py): rasa_sdk's app plus ``/metrics``, counting calls by
action and outcome, with latency. The outcome rules on their own, the apology path's marker
read from a real failed run, and the server as ``bot/assistant.py`` starts it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from rasa_sdk.executor import ActionExecutor

from actions import runtime
from actions.server import outcome_of
from bot import assistant
from bot.rasa_config import ROOT, AssistantSettings
from tests.conftest import TEST_KEY
from tests.ticketing.metrics_process import free_port, samples
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Base
from ticketing.core.pii import PiiCipher
from ticketing.desk import handoffs

TRACKER = json.loads((Path(__file__).parent / "trackers" / "base.json").read_text(encoding="utf-8"))


def call(action: str) -> dict[str, object]:
    return {"next_action": action, "tracker": TRACKER, "domain": {}, "version": "3.6.21"}


def body(*custom: dict[str, object]) -> bytes:
    return json.dumps({"events": [], "responses": [{"text": "hi", "custom": {}},
                                                   *({"custom": c} for c in custom)]}).encode()


@pytest.mark.parametrize(("status", "answer", "outcome"), [
    (200, body(), "ok"),
    (200, body({handoffs.HANDOFF_MARKER_KEY: {"handoff": True, "reason": "customer_asked"}}), "ok"),
    (200, body({handoffs.HANDOFF_MARKER_KEY: {"handoff": True, "reason": "action_failed"}}),
     "failed"),
    (200, body(handoffs.unavailable_marker(failed_action="action_x", language="zh")), "failed"),
    (200, b"not json but \"kefu\"", "ok"),
    (400, b"{}", "rejected"),
    (404, b"{}", "unknown"),
    (500, b"{}", "error"),
])
def test_outcome_of_an_answer(status: int, answer: bytes, outcome: str) -> None:
    assert outcome_of(status, answer) == outcome


def test_an_action_that_broke_answers_with_what_counts_as_failed(cipher) -> None:
    """The real error path (actions.base.Guarded → actions.failures.recover), its answer as
    rasa_sdk's executor builds it: the apology's marker is what outcome_of reads."""
    broken = make_session_factory(make_engine("sqlite://"))  # no tables: every query fails
    runtime.configure(runtime.Backend(broken, cipher))
    try:
        executor = ActionExecutor()
        executor.register_package("actions")
        result = asyncio.run(executor.run(call("action_handoff")))
    finally:
        runtime.configure(None)
    assert outcome_of(200, json.dumps(result).encode()) == "failed"


@contextmanager
def running_action_server(tmp_path: Path, **env_extra: str) -> Iterator[str]:
    """The action server as ``bot/assistant.py`` starts it, on an empty SQLite shop; yields
    its base URL and stops it after."""
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = AssistantSettings(action_port=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_DATABASE_URL=url, KEFU_VAR_DIR=str(tmp_path),
               KEFU_PII_KEY=base64.b64encode(TEST_KEY).decode(), **env_extra)
    argv = assistant.action_server_argv(settings)
    assert argv[1:3] == ["-m", "actions.server"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=assistant.action_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{settings.action_port}"
    try:
        assistant.wait_until_up(f"{base}/health", timeout=120, process=proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_action_server_counts_calls_on_its_metrics_route(tmp_path) -> None:
    with running_action_server(tmp_path) as base:
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.post("/webhook", json=call("action_ticket_status")).status_code == 200
            assert c.post("/webhook", json=call("action_no_such_thing")).status_code == 404
            assert c.post("/webhook", content=b"{not json",
                          headers={"Content-Type": "application/json"}).status_code == 400
            assert c.get("/actions").status_code == 200  # rasa_sdk's own routes are all there
            page = c.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    got = samples(page.text)
    assert got[("kefu_action_calls_total",
                (("action", "action_ticket_status"), ("outcome", "ok")))] == 1
    assert got[("kefu_action_calls_total", (("action", "unknown"), ("outcome", "unknown")))] == 1
    assert got[("kefu_action_calls_total", (("action", "none"), ("outcome", "rejected")))] == 1
    assert got[("kefu_action_seconds_count", (("action", "action_ticket_status"),))] == 1
    assert not any("action_no_such_thing" in str(key) for key in got)
