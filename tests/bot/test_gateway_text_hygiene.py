"""Poison messages: text no database takes is cleaned or refused, never "unavailable" forever.

Issue 13: a NUL (PostgreSQL text cannot hold it) or a lone UTF-16 surrogate made the gateway
answer ``unavailable``, and the widget resends an ``unavailable`` message every 3 s forever.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.gateway.text_hygiene import clean
from ticketing.core.models import InboundMessage
from tests.bot.test_gateway_core import build_rig, msg


@pytest.fixture
def rig(session_factory):
    return build_rig(session_factory, rasa_timeout=2)


@pytest.mark.parametrize(("raw", "kept"), [
    ("你好\x00世界", "你好世界"),
    ("a\x01b\x1bc\x7fd\x85e", "abcde"),
    ("第一行\r\n第二行\r第三行\n\t缩进", "第一行\n第二行\n第三行\n\t缩进"),
    ("订单\ud800号", "订单\ufffd号"),
    ("\udfff", "\ufffd"),
    ("emoji 😀 ok", "emoji 😀 ok"),
])
def test_clean_keeps_what_a_person_wrote(raw: str, kept: str) -> None:
    assert clean(raw) == kept
    kept.encode("utf-8")  # storable


def test_nul_and_lone_surrogates_are_cleaned_and_answered(rig, session_factory) -> None:
    gateway, rasa, _channel = rig

    async def scenario() -> list[str]:
        nul = await gateway.receive(msg("我的订单\x00到哪了", "m1"))
        surrogate = await gateway.receive(msg("退货\ud83d", "m2", payload=None))
        payload = await gateway.receive(msg("好", "m3", payload="/affirm\x00"))
        return [o.status for o in (nul, surrogate, payload)]

    assert asyncio.run(scenario()) == ["routed", "routed", "routed"]
    assert [m for _, m in rasa.sent] == ["我的订单到哪了", "退货\ufffd", "/affirm"]
    with session_factory() as s:
        texts = list(s.scalars(select(InboundMessage.text).order_by(InboundMessage.id)))
    assert texts == ["我的订单到哪了", "退货\ufffd", "好"]


def test_a_message_of_nothing_readable_is_refused_for_good_not_unavailable(
        rig, session_factory) -> None:
    gateway, rasa, _channel = rig
    outcome = asyncio.run(gateway.receive(msg("\x00\x00\x01", "m1")))
    assert outcome.status == "invalid" and outcome.reply  # the widget does not retry this
    assert "无法读取" in outcome.reply
    assert rasa.sent == []
    with session_factory() as s:
        assert s.scalars(select(InboundMessage)).all() == []


def test_a_message_the_database_refuses_is_invalid_but_an_outage_is_unavailable(
        rig, monkeypatch) -> None:
    gateway, _rasa, _channel = rig
    from sqlalchemy.exc import OperationalError

    from ticketing.conversations import inbound

    def unstorable(*_a: object, **_k: object) -> None:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    def outage(*_a: object, **_k: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(inbound, "record", unstorable)
    assert asyncio.run(gateway.receive(msg("你好", "m1"))).status == "invalid"
    monkeypatch.setattr(inbound, "record", outage)
    assert asyncio.run(gateway.receive(msg("你好", "m2"))).status == "unavailable"
