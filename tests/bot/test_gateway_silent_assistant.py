"""A turn the assistant answers with nothing (its action server died) never ends in silence.

Issue 13: with the action server killed mid-turn, Rasa logs the failed action and answers the
REST call with ``[]``; 10 customers got no answer and no apology.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from ticketing.core.models import InboundMessage, TicketMessage
from ticketing.desk import handoffs
from tests.bot.test_gateway_core import ScriptedRasa, build_rig, msg
from tests.ticketing.desk_setup import build_desk


class SilentRasa(ScriptedRasa):
    """Answers nothing at all, as Rasa does when the action server dies mid-turn."""

    def __init__(self) -> None:
        super().__init__()
        self.before_answer: Any = None

    async def send(self, sender: str, message: str, **speaker: Any) -> list[dict[str, Any]]:
        self.sent.append((sender, message))
        if self.before_answer is not None:
            self.before_answer(sender)
        return []


@pytest.fixture
def rig(session_factory, make, session):
    build_desk(make)
    session.commit()
    return build_rig(session_factory, SilentRasa(), rasa_timeout=2)


def test_an_empty_answer_means_apology_and_ticket(rig, session_factory) -> None:
    gateway, rasa, channel = rig
    outcome = asyncio.run(gateway.receive(msg("帮我查一下订单", "m1")))
    assert outcome.route == "fallback_ticket"
    [apology] = channel.texts("v-11111111")
    assert "抱歉" in apology and "工单号" in apology
    assert gateway.metrics.registry.get_sample_value(
        "kefu_gateway_errors_total", {"kind": "rasa_empty_answer"}) == 1
    with session_factory() as s:
        ticket = handoffs.active_ticket(s, conversation_id="widget:v-11111111")
        assert ticket is not None and ticket.number in apology
        bodies = list(s.scalars(select(TicketMessage.body).where(
            TicketMessage.ticket_id == ticket.id)))
    assert "帮我查一下订单" in bodies
    asyncio.run(gateway.receive(msg("还在吗", "m2")))
    assert len(rasa.sent) == 1  # handed off: the people have it now


def test_an_empty_answer_of_a_conversation_handed_off_meanwhile_goes_to_its_ticket(
        rig, session_factory) -> None:
    gateway, rasa, channel = rig

    def hand_off(sender: str) -> None:  # the assistant's own handoff landed in the database
        with session_factory.begin() as s:
            handoffs.open_for_conversation(s, conversation_id=sender, text="转人工",
                                           language="zh")

    rasa.before_answer = hand_off
    outcome = asyncio.run(gateway.receive(msg("转人工", "m1")))
    assert outcome.route == "ticket"  # no second ticket, no apology: a receipt of that ticket
    with session_factory() as s:
        routes = list(s.scalars(select(InboundMessage.route)))
    assert routes == ["ticket"]
    assert gateway.metrics.registry.get_sample_value(
        "kefu_gateway_errors_total", {"kind": "rasa_empty_answer"}) is None
