"""What of a customer's message reaches Rasa as an intent (``bot/gateway/payloads.py``).

Issue 13 found that typed ``/restart`` or ``/inform{"slot": …}`` reached Rasa as intents with
entities, and that a button ``payload`` of any size was stored and parsed. Only payloads the
bot offered in the conversation count; everything else is the customer's words.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.gateway import payloads
from bot.gateway.replay import replay_unhandled
from ticketing.core.clock import utcnow
from ticketing.core.models import InboundMessage
from tests.bot.test_gateway_core import build_rig, msg


@pytest.fixture
def rig(session_factory):
    return build_rig(session_factory, rasa_timeout=2)


@pytest.mark.parametrize(("typed", "nlu_reads"), [
    ("/restart", "restart"),
    ("/EXTERNAL_csat_request", "EXTERNAL_csat_request"),
    ('/inform{"order_id": "1234567890123456"}', 'inform{"order_id": "1234567890123456"}'),
    ("  / /session_start", "session_start"),
    ("///", "?"),
    ("我的订单 /restart", "我的订单 /restart"),
    ("你好", "你好"),
])
def test_typed_text_never_reaches_rasa_as_an_intent(typed: str, nlu_reads: str) -> None:
    assert payloads.as_text(typed) == nlu_reads
    assert not payloads.for_nlu(typed, max_chars=800).lstrip().startswith("/")


def test_customers_cannot_type_raw_intents(rig) -> None:
    gateway, rasa, _channel = rig
    typed = ["/restart", "/EXTERNAL_csat_request", '/intent{"slot": 1}']
    for n, text in enumerate(typed):
        outcome = asyncio.run(gateway.receive(msg(text, f"m{n}")))
        assert outcome.route == "rasa"
    assert [m for _, m in rasa.sent] == ["restart", "EXTERNAL_csat_request", 'intent{"slot": 1}']


def test_only_payloads_the_bot_offered_go_to_rasa_as_payloads(rig, session_factory) -> None:
    gateway, rasa, _channel = rig

    async def scenario() -> None:
        # nothing offered yet: a forged payload is sent as the button's words
        await gateway.receive(msg("好", "m1", payload="/affirm"))
        # the answer to it offered [好 → /affirm] (ScriptedRasa): now the press counts
        await gateway.receive(msg("好", "m2", payload="/affirm"))
        await gateway.receive(msg("重启", "m3", payload="/restart"))  # never offered
        await gateway.receive(msg("/greet", "m4", payload="/greet"))  # Telegram's /start
    asyncio.run(scenario())
    assert [m for _, m in rasa.sent] == ["好", "/affirm", "重启", "/greet"]
    with session_factory() as s:
        stored = [(m.text, (m.payload or {}).get("button")) for m in
                  s.scalars(select(InboundMessage).order_by(InboundMessage.id))]
    assert stored == [("好", None), ("好", "/affirm"), ("重启", None), ("/greet", "/greet")]


def test_a_replayed_message_keeps_its_offered_payload_and_nothing_else(
        rig, session_factory) -> None:
    gateway, rasa, _channel = rig
    asyncio.run(gateway.receive(msg("你好", "m1")))  # offers /affirm
    from ticketing.conversations import inbound
    with session_factory.begin() as s:
        inbound.record(s, channel="widget", conversation_id="widget:v-11111111",
                       dedupe_key="v-11111111:late", text="/restart",
                       now=utcnow() - timedelta(minutes=1))
    asyncio.run(replay_unhandled(gateway))
    assert rasa.sent[-1] == ("widget:v-11111111", "restart")


def test_an_oversized_or_malformed_payload_is_refused_before_it_is_stored(
        rig, session_factory) -> None:
    gateway, rasa, _channel = rig
    limit = gateway.settings.max_payload_chars

    async def scenario() -> list[str]:
        huge = await gateway.receive(msg("好", "m1", payload="/affirm" + "x" * 60_000))
        over = await gateway.receive(msg("好", "m2", payload="/" + "a" * limit))
        multiline = await gateway.receive(msg("好", "m3", payload="/affirm\n/restart"))
        return [o.status for o in (huge, over, multiline)]
    statuses = asyncio.run(scenario())
    assert statuses == ["invalid", "invalid", "invalid"]
    assert rasa.sent == []
    with session_factory() as s:
        assert s.scalars(select(InboundMessage)).all() == []
    assert payloads.acceptable("/" + "a" * (limit - 1), max_chars=limit)
    assert payloads.acceptable('/rate{"csat_score": 5}', max_chars=limit)
