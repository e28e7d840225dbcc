"""Telegram serves private chats only: in a group every member would act as the customer whose
contact was shared there (orders, refunds, masked address), so nothing from a group is routed,
stored or verified.

The real ``TelegramChannel`` (python-telegram-bot polling) against the fake Bot API
(tests/bot/fake_telegram.py), with a scripted assistant and a real database.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.gateway.core import Gateway
from bot.gateway.delivery import Delivery
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.settings import GatewaySettings
from bot.gateway.telegram import TelegramChannel
from ticketing.conversations.chat_history import Entry
from ticketing.core.models import AuditLog, ChannelIdentity, InboundMessage
from ticketing.shop import customers
from tests.bot.fake_telegram import FakeTelegram
from tests.bot.test_gateway_core import ScriptedRasa
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.timeout(60)

PHONE = "13900002222"
GROUP = -100_555_000_1  # a supergroup with the bot in it (privacy mode off, or an admin)
USER_A, USER_B = 740_001, 740_002
SETTLE = 1.5  # "nothing else happens": how long to watch after the last update was handled
_message_ids = itertools.count(1)


def rig(session_factory: sessionmaker[Session], tg: FakeTelegram,
        tmp_path: Path) -> tuple[TelegramChannel, ScriptedRasa]:
    settings = GatewaySettings(rasa_timeout=5, rate_limit=100, telegram_token=tg.token,
                               telegram_base_url=tg.base_url,
                               telegram_base_file_url=tg.base_file_url)
    rasa = ScriptedRasa()
    gateway = Gateway(settings=settings, session_factory=session_factory,
                      rasa=rasa,  # type: ignore[arg-type]
                      limiter=RateLimiter(limit=100, window=60), metrics=GatewayMetrics(),
                      pii_key=TEST_KEY)
    channel = TelegramChannel(gateway, attachments_dir=tmp_path / "attachments")
    gateway.register(channel)
    Delivery(gateway)
    return channel, rasa


@asynccontextmanager
async def running(channel: TelegramChannel) -> AsyncIterator[TelegramChannel]:
    await channel.start()
    try:
        yield channel
    finally:
        await channel.stop()


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        await asyncio.sleep(0.05)


async def handled(tg: FakeTelegram) -> None:
    """Every pushed update was fetched, then a moment for the handlers to finish."""
    await until(lambda: tg.pending_updates == 0, "the updates to be fetched")
    await asyncio.sleep(SETTLE)


def in_group(tg: FakeTelegram, user: int, **content: Any) -> dict[str, Any]:
    """A message from ``user`` in GROUP (the fake's builders other than text are private)."""
    sender = {"id": user, "is_bot": False, "first_name": f"U{user}", "language_code": "zh"}
    chat = {"id": GROUP, "type": "supergroup", "title": "Shop fans"}
    message = {"message_id": next(_message_ids), "from": sender, "chat": chat,
               "date": int(time.time()), **content}
    return tg.push_raw({"message": message})


def group_traces(session_factory: sessionmaker[Session]) -> dict[str, int]:
    """What the group chat left in the database: identities, stored messages, links."""
    conversation = customers.conversation_id_for("telegram", str(GROUP))
    with session_factory() as s:
        return {
            "identities": s.scalar(select(func.count()).select_from(ChannelIdentity).where(
                ChannelIdentity.channel == "telegram",
                ChannelIdentity.external_id == str(GROUP))) or 0,
            "inbound": s.scalar(select(func.count()).select_from(InboundMessage).where(
                InboundMessage.conversation_id == conversation)) or 0,
            "links": s.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.action == "identity.linked")) or 0,
        }


def test_a_contact_shared_in_a_group_verifies_nothing(session_factory, make, session,
                                                      tmp_path) -> None:
    """User A shares their own contact in the group: no identity for the group is linked to
    A's account (nor any stored); only someone addressing the bot gets a notice, once."""
    make.customer(phone=PHONE)
    session.commit()

    async def scenario(tg: FakeTelegram) -> None:
        channel, rasa = rig(session_factory, tg, tmp_path)
        async with running(channel):
            in_group(tg, USER_A, contact={"phone_number": PHONE, "first_name": "A",
                                          "user_id": USER_A})
            in_group(tg, USER_A, text="我的订单到哪了")
            in_group(tg, USER_A, photo=[{"file_id": "p1", "file_unique_id": "u-p1",
                                         "width": 90, "height": 90}])
            await handled(tg)
            assert tg.sent(GROUP) == []  # chatter, not addressed to the bot: no answer
            in_group(tg, USER_B, text="/start@kefu_test_bot",
                     entities=[{"type": "bot_command", "offset": 0, "length": 20}])
            in_group(tg, USER_B, text="@kefu_test_bot 在吗",
                     entities=[{"type": "mention", "offset": 0, "length": 14}])
            await handled(tg)
            assert rasa.sent == []
        (notice,) = tg.sent(GROUP)  # told once, though addressed twice
        assert "私聊" in notice["text"] and "private" in notice["text"]
        assert "https://t.me/kefu_test_bot" in notice["text"]
        assert "reply_markup" not in notice  # no "share my phone number" keyboard

    with FakeTelegram() as tg:
        asyncio.run(scenario(tg))
    assert group_traces(session_factory) == {"identities": 0, "inbound": 0, "links": 0}


def test_a_button_pressed_in_a_group_is_answered_and_ignored(session_factory, make, session,
                                                             tmp_path) -> None:
    """A group linked before the fix (its old answers have order buttons): user B's press
    stops the spinner and does nothing else, though the group is A's verified identity."""
    customer = make.customer(phone=PHONE)
    customers.link_identity(session, channel="telegram", external_id=str(GROUP),
                            customer_id=customer.id, method="phone")
    session.commit()

    async def scenario(tg: FakeTelegram) -> None:
        channel, rasa = rig(session_factory, tg, tmp_path)
        async with running(channel):
            press = tg.push_callback(USER_B, '/track_order{"order_id": "X1"}', chat_id=GROUP)
            query_id = press["callback_query"]["id"]
            await until(lambda: any(a["callback_query_id"] == query_id
                                    for a in tg.callback_answers), "the press to be answered")
            await handled(tg)
            assert rasa.sent == []
            (answer,) = [a for a in tg.callback_answers if a["callback_query_id"] == query_id]
            assert "私聊" in answer.get("text", "")  # a toast to the presser alone

    with FakeTelegram() as tg:
        asyncio.run(scenario(tg))
        assert tg.sent(GROUP) == []
    traces = group_traces(session_factory)
    assert traces["inbound"] == 0 and traces["links"] == 1  # the old link only


def test_a_private_chat_still_works_beside_a_group(session_factory, make, session,
                                                   tmp_path) -> None:
    """A talks to the bot privately (answer, verification, a button) and in the group at the
    same time: the private chat works as before, the group gets nothing of it."""
    customer = make.customer(phone=PHONE, name="王芳")
    session.commit()

    async def scenario(tg: FakeTelegram) -> None:
        channel, rasa = rig(session_factory, tg, tmp_path)
        async with running(channel):
            tg.push_text(USER_A, "你好")
            in_group(tg, USER_A, text="你好")
            (first,) = await tg.wait_for_sent_async(USER_A, 1)
            assert first["text"] == "echo: 你好"
            assert first["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/affirm"

            tg.push_contact(USER_A, PHONE)
            sent = await tg.wait_for_sent_async(USER_A, 2)
            assert "王芳" in sent[1]["text"]  # verified

            press = tg.push_callback(USER_A, "/affirm", message_id=first["message_id"])
            await tg.wait_for_sent_async(USER_A, 3)
            assert any(a["callback_query_id"] == press["callback_query"]["id"]
                       for a in tg.callback_answers)
            await handled(tg)
            assert [who for who, _ in rasa.sent] == [f"telegram:{USER_A}"] * 2
        assert tg.sent(GROUP) == []

    with FakeTelegram() as tg:
        asyncio.run(scenario(tg))
    with session_factory() as s:
        mine = customers.customer_for_conversation(s, conversation_id=f"telegram:{USER_A}")
        assert mine is not None and mine.id == customer.id
    assert group_traces(session_factory) == {"identities": 0, "inbound": 0, "links": 1}


def test_nothing_is_sent_to_a_group_conversation(session_factory, tmp_path) -> None:
    """What is still owed to a group linked before the fix fails to send instead of reaching
    the group (the outbox retries it; an operator unlinks the group)."""
    async def scenario(tg: FakeTelegram) -> None:
        channel, _rasa = rig(session_factory, tg, tmp_path)
        channel.build()
        await channel.application.initialize()  # type: ignore[union-attr]
        try:
            entry = Entry(id="out-1", direction="out", kind="bot", text="您的订单已发货",
                          at=datetime.now(timezone.utc))
            with pytest.raises(ValueError, match="not a private chat"):
                await channel.deliver(str(GROUP), entry)
            with pytest.raises(ValueError, match="not a private chat"):
                await channel.typing(str(GROUP), True)
        finally:
            await channel.application.shutdown()  # type: ignore[union-attr]

    with FakeTelegram() as tg:
        asyncio.run(scenario(tg))
        assert tg.sent(GROUP) == [] and tg.chat_actions == []
