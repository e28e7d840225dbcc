"""Who may call the action server (actions/endpoint_guard.py): this machine by default, and
beyond it only a caller that shows KEFU_ACTION_TOKEN, as the Rasa servers do."""

from __future__ import annotations

import httpx
import pytest

from actions.endpoint_guard import required_token, serving_host
from bot.rasa_config import AssistantSettings, endpoints
from tests.actions.test_server import call, running_action_server
from ticketing.core.errors import ConfigurationError
from ticketing.core.shared_tokens import ACTION_TOKEN_HEADER


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
    with running_action_server(tmp_path, KEFU_ACTION_TOKEN="s3cret") as base:
        with httpx.Client(base_url=base, timeout=30) as c:
            bare = c.post("/webhook", json=call("action_ticket_status"))
            wrong = c.post("/webhook", json=call("action_ticket_status"),
                           headers={ACTION_TOKEN_HEADER: "guess"})
            listed = c.get("/actions")
            shown = c.post("/webhook", json=call("action_ticket_status"),
                           headers={ACTION_TOKEN_HEADER: "s3cret"})
            health = c.get("/health")
    assert bare.status_code == wrong.status_code == listed.status_code == 401
    assert shown.status_code == 200 and health.status_code == 200
