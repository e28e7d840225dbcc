"""Who may call the action server (actions/endpoint_guard.py): this machine by default, and
beyond it only a caller that shows KEFU_ACTION_TOKEN, as the Rasa servers do."""

from __future__ import annotations

import base64
import os
import subprocess

import httpx
import pytest

from actions.endpoint_guard import required_token, serving_host
from bot import assistant
from bot.rasa_config import ROOT, AssistantSettings, endpoints
from tests.actions.test_server import call
from tests.conftest import TEST_KEY
from tests.ticketing.metrics_process import free_port
from ticketing.core.db import make_engine
from ticketing.core.errors import ConfigurationError
from ticketing.core.hosts import ACTION_TOKEN_HEADER
from ticketing.core.models import Base


def test_it_listens_on_this_machine_unless_told_otherwise() -> None:
    assert serving_host({}) == "127.0.0.1"  # rasa_sdk's own default was every interface
    assert serving_host({"SANIC_HOST": "10.0.0.5"}) == "10.0.0.5"


def test_listening_beyond_this_machine_needs_a_token() -> None:
    with pytest.raises(ConfigurationError, match="KEFU_ACTION_TOKEN"):
        required_token("0.0.0.0", {})
    assert required_token("0.0.0.0", {"KEFU_ACTION_TOKEN": "s3cret"}) == "s3cret"
    assert required_token("127.0.0.1", {}) is None


def test_rasa_shows_the_token_to_the_action_server() -> None:
    with_token = endpoints(AssistantSettings(action_token="s3cret"))["action_endpoint"]
    assert with_token["headers"] == {ACTION_TOKEN_HEADER: "s3cret"}  # type: ignore[index]
    assert "headers" not in endpoints(AssistantSettings())["action_endpoint"]  # type: ignore[operator]


def test_with_a_token_a_call_without_it_runs_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = AssistantSettings(action_port=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_DATABASE_URL=url, KEFU_VAR_DIR=str(tmp_path), KEFU_ACTION_TOKEN="s3cret",
               KEFU_PII_KEY=base64.b64encode(TEST_KEY).decode())
    proc = subprocess.Popen(assistant.action_server_argv(settings), cwd=ROOT,
                            env=assistant.action_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{settings.action_port}"
    try:
        assistant.wait_until_up(f"{base}/health", timeout=120, process=proc)
        with httpx.Client(base_url=base, timeout=30) as c:
            bare = c.post("/webhook", json=call("action_ticket_status"))
            wrong = c.post("/webhook", json=call("action_ticket_status"),
                           headers={ACTION_TOKEN_HEADER: "guess"})
            listed = c.get("/actions")
            shown = c.post("/webhook", json=call("action_ticket_status"),
                           headers={ACTION_TOKEN_HEADER: "s3cret"})
            health = c.get("/health")
    finally:
        proc.terminate()
        proc.wait(15)
    assert bare.status_code == wrong.status_code == listed.status_code == 401
    assert shown.status_code == 200 and health.status_code == 200
