"""The running assistant end to end: Rasa server + action server + database, over HTTP.

Slow (Rasa loads TensorFlow): one stack per module, shared by the tests. Needs the trained
model (`make test` trains it first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.rasa_client import handoff_marker
from tests.assistant.live import LiveAssistant
from ticketing.desk import ownership, tickets
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Agent, ChannelIdentity, Role, Survey, Ticket

MODEL = Path(__file__).resolve().parents[2] / "models" / "kefu.tar.gz"
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it first)")
    stack = LiveAssistant(tmp_path_factory.mktemp("live"))
    stack.seed()
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise AssertionError("assistant did not start\n" + stack.logs()) from None
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def db(live: LiveAssistant):
    engine = make_engine(live.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _buttons(messages: list[dict]) -> list[dict]:
    return [b for m in messages for b in (m.get("buttons") or [])]


def _text(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def test_anonymous_visitor_is_asked_to_verify_in_english(live: LiveAssistant) -> None:
    answer = live.client.send("widget:stranger-1", "where is my order??", verified=False)
    assert "verify" in _text(answer).lower(), answer


def test_verified_customer_tracks_an_order_by_button(live: LiveAssistant) -> None:
    """The gateway says a linked visitor is verified (message metadata, as for every message
    it sends; tests/bot/test_speaker.py); here the test speaks for it."""
    sender = "widget:demo-1"
    first = live.client.send(sender, "我的订单到哪了", verified=True)
    buttons = _buttons(first)
    if buttons:  # several recent orders: pick one
        answer = live.client.send(sender, buttons[0]["payload"], verified=True, language="zh")
    else:  # exactly one order: answered at once
        answer = first
    text = _text(answer)
    assert text and "订单" in text, answer


def test_handoff_pauses_the_bot_until_the_desk_hands_back_then_csat(
        live: LiveAssistant, db) -> None:
    sender = "widget:demo-2"
    answer = live.client.send(sender, "我要转人工客服", verified=True)
    marker = handoff_marker(answer)
    assert marker is not None, answer
    assert marker["ticket_number"] in _text(answer)
    with db.begin() as session:
        identity = session.scalars(select(ChannelIdentity).where(
            ChannelIdentity.conversation_id == sender)).one()
        assert identity.handed_off_ticket_id == marker["ticket_id"]

    assert live.client.send(sender, "有人吗？", verified=True) == []  # silent while a person owns it

    with db.begin() as session:
        ticket = session.get(Ticket, marker["ticket_id"])
        supervisor = session.scalars(select(Agent).where(Agent.role == Role.SUPERVISOR)).first()
        ownership.claim(session, ticket_id=ticket.id, agent_id=supervisor.id)
        tickets.agent_reply(session, ticket_id=ticket.id, agent_id=supervisor.id, body="已处理好了")
        tickets.solve(session, ticket_id=ticket.id, agent_id=supervisor.id, resolution="resolved")

    live.client.resume(sender)
    survey = live.client.trigger(sender, "EXTERNAL_csat_request",
                                 {"ticket_number": marker["ticket_number"]})
    payloads = [b["payload"] for b in _buttons(survey)]
    assert any("csat_score" in p for p in payloads), survey
    five = next(p for p in payloads if '"csat_score": 5' in p.replace("'", '"'))
    live.client.send(sender, five, verified=True, language="zh")
    with db.begin() as session:
        stored = session.scalars(select(Survey).where(Survey.ticket_id == marker["ticket_id"])).one()
        assert stored.score == 5


def _survives_restart(stack: LiveAssistant, sender: str) -> None:
    stack.client.send(sender, "hello, is the power bank in stock?")
    before = stack.client.tracker(sender)
    assert before["slots"]["language"] == "en"
    stack.stop_rasa()
    stack.start_rasa()
    after = stack.client.tracker(sender)
    assert after["slots"]["language"] == "en"
    assert len(after["events"]) >= len(before["events"])
    # a button payload carries no language of its own: the answer follows the restored slot
    assert "welcome" in _text(stack.client.send(sender, "/thank")).lower()


def test_conversation_state_survives_a_rasa_restart(live: LiveAssistant) -> None:
    _survives_restart(live, "widget:restart-1")  # SQL tracker store (SQLite under var/)


def test_redis_tracker_store_survives_a_rasa_restart(tmp_path: Path, live: LiveAssistant) -> None:
    if not REDIS_URL:
        pytest.skip("Redis test (set KEFU_TEST_REDIS_URL)")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    stack = LiveAssistant(tmp_path, redis_url=REDIS_URL)
    stack.seed()
    try:
        stack.start()
        _survives_restart(stack, "widget:restart-redis")
        assert redis.Redis.from_url(REDIS_URL).keys("kefutracker*"), "tracker not in Redis"
    finally:
        stack.stop()
