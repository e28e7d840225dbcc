"""The Telegram channel end to end: the real gateway (``python -m bot``) and the real assistant,
with a fake Bot API server (tests/bot/fake_telegram.py) in place of Telegram.

python-telegram-bot inside the gateway polls the fake for updates and sends its answers there,
so what is checked is what a Telegram user would see: answers in their language, the
"share my phone number" keyboard, inline buttons, verification by contact, the handoff to an
agent and back, retries of failed deliveries and webhook mode. Every test has its own Telegram
user, so they share one gateway without reading each other's messages.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.assistant.live import LiveAssistant
from tests.bot.fake_telegram import FakeTelegram
from tests.bot.gateway_harness import Desk, GatewayProcess, demo_customer, demo_phone, metric

pytestmark = pytest.mark.timeout(600)  # the first test also waits for the assistant to start

WAIT = 60.0  # an answer on a loaded 2-core machine
SETTLE = 4.0  # "nothing else arrives": how long to watch

Message = dict[str, Any]

# One Telegram user per test.
GREET_ZH, GREET_EN = 710_001, 710_002
VERIFY_OWN, VERIFY_FOREIGN = 710_011, 710_012
BUTTON_USER = 710_021
DUPLICATE_USER = 710_031
STICKER_USER = 710_041
HANDOFF_USER = 710_051
RETRY_USER = 710_061
WEBHOOK_USER, WEBHOOK_REFUSED = 710_071, 710_072


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as tg:
        yield tg


def telegram_env(tg: FakeTelegram) -> dict[str, str]:
    return {"KEFU_TELEGRAM_TOKEN": tg.token, "KEFU_TELEGRAM_BASE_URL": tg.base_url,
            "KEFU_TELEGRAM_BASE_FILE_URL": tg.base_file_url}


@pytest.fixture(scope="module")
def gateway(live_stack: LiveAssistant, fake: FakeTelegram) -> Iterator[GatewayProcess]:
    """The gateway in polling mode (the default) against the module's fake Telegram."""
    process = GatewayProcess(live_stack, extra_env=telegram_env(fake), name="gateway-telegram")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def customer(live_stack: LiveAssistant) -> tuple[int, str, str]:
    """A demo customer with orders: (id, name, phone in clear)."""
    customer_id, name = demo_customer(live_stack.database_url)
    return customer_id, name, demo_phone(live_stack, customer_id)


@pytest.fixture(scope="module")
def quiet_customer(live_stack: LiveAssistant) -> tuple[int, str, str]:
    """A Chinese-speaking customer without tickets, for the handoff: the other live modules
    hand off ``demo_customer``, and a contact of a customer whose ticket was solved recently
    reopens that ticket (whose survey was already sent) instead of opening a new one."""
    from sqlalchemy import func

    from ticketing.core.models import Customer, Ticket

    engine, factory = db_session(live_stack)
    try:
        with factory() as session:
            tickets = select(func.count(Ticket.id)).where(Ticket.customer_id == Customer.id)
            row = session.execute(
                select(Customer.id, Customer.name).where(
                    Customer.phone_enc.is_not(None), Customer.language == "zh",
                    tickets.scalar_subquery() == 0)
                .order_by(Customer.id.desc()).limit(1)).one()
    finally:
        engine.dispose()
    return int(row[0]), str(row[1]), demo_phone(live_stack, int(row[0]))


# -- helpers -------------------------------------------------------------------------------------

def conversation(user: int) -> str:
    return f"telegram:{user}"


def wait_message(tg: FakeTelegram, chat: int, predicate: Callable[[Message], bool], *,
                 after: int = 0, timeout: float = WAIT, what: str = "a matching message") -> Message:
    """The first message sent to ``chat`` (from index ``after`` on) that ``predicate`` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        for message in tg.sent(chat)[after:]:
            if predicate(message):
                return message
        if time.monotonic() > deadline:
            texts = [m.get("text") for m in tg.sent(chat)]
            raise AssertionError(f"waited {timeout}s for {what} in chat {chat}; sent: {texts!r}")
        time.sleep(0.1)


def wait_text(tg: FakeTelegram, chat: int, needle: str, *, after: int = 0,
              timeout: float = WAIT) -> Message:
    return wait_message(tg, chat, lambda m: needle in m.get("text", ""), after=after,
                        timeout=timeout, what=repr(needle))


def wait_until(check: Callable[[], Any], *, timeout: float = WAIT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}; last: {result!r}")
        time.sleep(0.2)


def quiet(tg: FakeTelegram, chat: int, count: int, seconds: float = SETTLE) -> list[Message]:
    """Watch ``chat`` for ``seconds``: exactly ``count`` messages, no more arriving."""
    time.sleep(seconds)
    sent = tg.sent(chat)
    assert len(sent) == count, [m.get("text") for m in sent]
    return sent


def quiet_everywhere(tg: FakeTelegram, seconds: float = 2.0, timeout: float = WAIT) -> None:
    """Wait until no sendMessage happened for ``seconds`` (earlier tests' stragglers are done)."""
    deadline = time.monotonic() + timeout
    seen = len(tg.calls("sendMessage"))
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = len(tg.calls("sendMessage"))
        if now != seen:
            seen, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= seconds:
            return
    raise AssertionError("the gateway never went quiet")


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def inline_buttons(message: Message) -> list[dict[str, Any]]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def contact_buttons(message: Message) -> list[dict[str, Any]]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("keyboard", []) for button in row
            if isinstance(button, dict) and button.get("request_contact")]


def verify(tg: FakeTelegram, user: int, phone: str) -> Message:
    """Share the user's own contact; returns the "verified" message."""
    before = len(tg.sent(user))
    tg.push_contact(user, phone)
    return wait_text(tg, user, "验证成功", after=before)


def ask_orders(tg: FakeTelegram, user: int) -> Message:
    """"Where is my order?" from a verified customer with several orders: the order buttons."""
    before = len(tg.sent(user))
    tg.push_text(user, "我的订单到哪了")
    return wait_message(tg, user, lambda m: bool(inline_buttons(m)), after=before,
                        what="the order buttons")


def db_session(live: LiveAssistant):
    from ticketing.core.db import make_engine, make_session_factory

    engine = make_engine(live.database_url)
    return engine, make_session_factory(engine)


def orders_of(live: LiveAssistant, customer_id: int) -> dict[str, str]:
    """The customer's orders: number -> state name in Chinese."""
    from ticketing.shop import orders
    from ticketing.core.models import Order

    engine, factory = db_session(live)
    try:
        with factory() as session:
            return {o.number: orders.state_name(o.state, language="zh") for o in session.scalars(
                select(Order).where(Order.customer_id == customer_id))}
    finally:
        engine.dispose()


def identity_customer(live: LiveAssistant, user: int) -> int | None:
    from ticketing.core.models import ChannelIdentity

    engine, factory = db_session(live)
    try:
        with factory() as session:
            identity = session.scalars(select(ChannelIdentity).where(
                ChannelIdentity.conversation_id == conversation(user))).first()
            assert identity is not None, "the gateway did not record the identity"
            return identity.customer_id
    finally:
        engine.dispose()


def audit_actions(live: LiveAssistant, user: int) -> list[tuple[str, dict[str, Any]]]:
    from ticketing.core.models import AuditLog

    engine, factory = db_session(live)
    try:
        with factory() as session:
            return [(a.action, dict(a.details or {})) for a in session.scalars(
                select(AuditLog).where(AuditLog.target_id == conversation(user))
                .order_by(AuditLog.id))]
    finally:
        engine.dispose()


def ticket_facts(live: LiveAssistant, ticket_id: int) -> tuple[str, str | None]:
    """(ticket number, first name of its owner) as the customer sees them."""
    from ticketing.core.models import Agent, Ticket

    engine, factory = db_session(live)
    try:
        with factory() as session:
            ticket = session.get(Ticket, ticket_id)
            owner = session.get(Agent, ticket.owner_id) if ticket.owner_id else None
            return ticket.number, owner.first_name if owner is not None else None
    finally:
        engine.dispose()


# -- 1. text round trip ------------------------------------------------------------------------

def test_text_round_trip_in_the_users_language(fake: FakeTelegram, gateway: GatewayProcess) -> None:
    fake.push_text(GREET_ZH, "你好", language_code="zh")
    fake.push_text(GREET_EN, "hello", first_name="Ann", language_code="en")

    zh = fake.wait_for_sent(GREET_ZH, 1, timeout=WAIT)[0]
    assert has_cjk(zh["text"]), zh
    assert "您好" in zh["text"], zh
    en = fake.wait_for_sent(GREET_EN, 1, timeout=WAIT)[0]
    assert not has_cjk(en["text"]) and "Kefu" in en["text"], en

    # an unverified user's first answer offers to verify by sharing the phone number
    (zh_key,) = contact_buttons(zh)
    assert "手机号" in zh_key["text"]
    (en_key,) = contact_buttons(en)
    assert "Share my phone number" in en_key["text"]
    assert fake.chat_actions and {a["chat_id"] for a in fake.chat_actions} >= {GREET_ZH, GREET_EN}


# -- 2. verification by shared contact -----------------------------------------------------------

def test_own_contact_verifies_and_opens_the_orders(
        fake: FakeTelegram, gateway: GatewayProcess, live_stack: LiveAssistant,
        customer: tuple[int, str, str]) -> None:
    customer_id, name, phone = customer
    verified = verify(fake, VERIFY_OWN, phone)
    assert name in verified["text"]
    assert verified.get("reply_markup") == {"remove_keyboard": True}
    assert identity_customer(live_stack, VERIFY_OWN) == customer_id
    linked = [d for a, d in audit_actions(live_stack, VERIFY_OWN) if a == "identity.linked"]
    assert linked and linked[-1]["customer_id"] == customer_id and linked[-1]["method"] == "phone"

    listing = ask_orders(fake, VERIFY_OWN)
    numbers = orders_of(live_stack, customer_id)
    buttons = inline_buttons(listing)
    assert 2 <= len(buttons) <= 5, listing
    for button in buttons:
        payload = button["callback_data"]
        assert payload.startswith("/track_order{"), payload
        number = json.loads(payload[len("/track_order"):])["order_id"]
        assert number in numbers  # the customer's own orders, nobody else's
        assert number[-4:] in button["text"]


def test_foreign_contact_is_refused_and_links_nothing(
        fake: FakeTelegram, gateway: GatewayProcess, live_stack: LiveAssistant,
        customer: tuple[int, str, str]) -> None:
    _customer_id, _name, phone = customer
    fake.push_contact(VERIFY_FOREIGN, phone, contact_user_id=VERIFY_FOREIGN + 1000,
                      first_name="Someone")
    refused = wait_text(fake, VERIFY_FOREIGN, "自己的手机号")
    assert "验证成功" not in refused["text"]
    assert identity_customer(live_stack, VERIFY_FOREIGN) is None
    actions = [a for a, _ in audit_actions(live_stack, VERIFY_FOREIGN)]
    assert "identity.foreign_contact_refused" in actions and "identity.linked" not in actions

    before = len(fake.sent(VERIFY_FOREIGN))
    fake.push_text(VERIFY_FOREIGN, "我的订单")
    answer = wait_message(fake, VERIFY_FOREIGN, lambda m: True, after=before)
    assert "验证身份" in answer["text"], answer
    assert not inline_buttons(answer)
    assert identity_customer(live_stack, VERIFY_FOREIGN) is None


# -- 3. inline button press --------------------------------------------------------------------

def test_order_button_press_is_answered_and_tracks_that_order(
        fake: FakeTelegram, gateway: GatewayProcess, live_stack: LiveAssistant,
        customer: tuple[int, str, str]) -> None:
    customer_id, _name, phone = customer
    verify(fake, BUTTON_USER, phone)
    listing = ask_orders(fake, BUTTON_USER)
    button = inline_buttons(listing)[-1]
    number = json.loads(button["callback_data"][len("/track_order"):])["order_id"]
    state = orders_of(live_stack, customer_id)[number]

    before = len(fake.sent(BUTTON_USER))
    press = fake.push_callback(BUTTON_USER, button["callback_data"],
                               message_id=listing["message_id"])
    query_id = press["callback_query"]["id"]
    answer = wait_message(fake, BUTTON_USER, lambda m: True, after=before,
                          what="the answer to the press")
    assert number[-4:] in answer["text"] or state in answer["text"], (number, state, answer)
    assert any(a["callback_query_id"] == query_id for a in fake.callback_answers)
    # the press is stored as the customer's message, with the button's title as its text
    inbound = Desk(live_stack.database_url)
    try:
        assert button["text"] in [text for text, _route in inbound.inbound(conversation(BUTTON_USER))]
    finally:
        inbound.close()


# -- 4. duplicate update ---------------------------------------------------------------------

def test_a_redelivered_update_is_answered_once(
        fake: FakeTelegram, gateway: GatewayProcess, desk: Desk) -> None:
    update = fake.push_text(DUPLICATE_USER, "你好")
    fake.push_raw(update)  # Telegram delivers the same update_id again
    fake.push_raw(update)
    fake.wait_for_sent(DUPLICATE_USER, 1, timeout=WAIT)
    quiet(fake, DUPLICATE_USER, 1)
    assert desk.inbound(conversation(DUPLICATE_USER)) == [("你好", "rasa")]
    assert metric(gateway.metrics(), "kefu_gateway_duplicates_total", channel="telegram") >= 2


# -- 5. non-text -------------------------------------------------------------------------------

def test_a_sticker_gets_the_only_text_answer(fake: FakeTelegram, gateway: GatewayProcess) -> None:
    fake.push_sticker(STICKER_USER)
    answer = fake.wait_for_sent(STICKER_USER, 1, timeout=WAIT)[0]
    assert "只能读懂文字消息" in answer["text"], answer
    quiet(fake, STICKER_USER, 1, seconds=2)


# -- 6. handoff, agent reply, solved, CSAT ---------------------------------------------------

def test_handoff_agent_reply_solve_and_csat(
        fake: FakeTelegram, gateway: GatewayProcess, live_stack: LiveAssistant, desk: Desk,
        quiet_customer: tuple[int, str, str]) -> None:
    user, conv = HANDOFF_USER, conversation(HANDOFF_USER)
    verify(fake, user, quiet_customer[2])

    before = len(fake.sent(user))
    fake.push_text(user, "转人工")
    handed = wait_text(fake, user, "工单号", after=before)
    ticket_id = wait_until(lambda: desk.handed_off_ticket(conv), what="the handed-off ticket")
    number, _owner = ticket_facts(live_stack, ticket_id)
    assert number in handed["text"]

    # while handed off, the customer writes to the ticket, not to the bot
    time.sleep(2)  # whatever else the handoff says has arrived
    count = len(fake.sent(user))
    fake.push_text(user, "请快点处理")
    wait_until(lambda: any(a == "customer" and b == "请快点处理" for a, b, _ in desk.thread(ticket_id)),
               what="the message on the ticket thread")
    # the assistant stays silent; the customer gets exactly one receipt naming the ticket
    receipt = wait_text(fake, user, "收到", after=count)
    assert number in receipt["text"]
    quiet(fake, user, count + 1)
    count += 1

    # a photo is downloaded and attached to the ticket
    image = b"\xff\xd8\xff\xe0" + hashlib.sha256(b"kefu").digest() * 64 + b"\xff\xd9"
    fake.add_file("photo-handoff", image, "photos/handoff.jpg")
    fake.push_photo(user, "photo-handoff")
    wait_text(fake, user, "图片已收到", after=count)
    customer_messages = [m for m in desk.thread(ticket_id) if m[0] == "customer"]
    _author, _body, attachments = customer_messages[-1]
    (photo,) = attachments
    assert photo["kind"] == "photo" and photo["telegram_file_id"] == "photo-handoff"
    assert Path(photo["path"]).is_file()
    assert Path(photo["path"]).read_bytes() == image

    # the agent's reply reaches Telegram under the agent's name
    after_photo = len(fake.sent(user))
    desk.reply(ticket_id, "您好，我是客服，正在为您处理")
    reply = wait_text(fake, user, "您好，我是客服，正在为您处理", after=after_photo)
    _number, agent = ticket_facts(live_stack, ticket_id)
    assert agent and reply["text"] == f"👤 {agent}: 您好，我是客服，正在为您处理"

    # solved: the notice, then the survey with five star buttons
    after_reply = len(fake.sent(user))
    desk.solve(ticket_id, "已补发")
    solved = wait_text(fake, user, "已补发", after=after_reply)
    assert number in solved["text"]
    survey = wait_message(fake, user, lambda m: len(inline_buttons(m)) == 5, after=after_reply,
                          what="the CSAT question")
    assert survey["message_id"] > solved["message_id"]
    five = [b for b in inline_buttons(survey) if "csat_score" in b["callback_data"]
            and json.loads(b["callback_data"][len("/rate"):])["csat_score"] == 5]
    assert len(five) == 1, inline_buttons(survey)

    after_survey = len(fake.sent(user))
    press = fake.push_callback(user, five[0]["callback_data"], message_id=survey["message_id"])
    wait_until(lambda: desk.survey_score(ticket_id) == 5, what="the stored rating")
    assert any(a["callback_query_id"] == press["callback_query"]["id"]
               for a in fake.callback_answers)
    wait_text(fake, user, "5 星", after=after_survey)  # thanks for the rating
    assert desk.handed_off_ticket(conv) is None  # the bot has the conversation again


# -- 7. delivery retried -------------------------------------------------------------------------

def test_a_failed_delivery_is_retried_until_it_lands_once(
        fake: FakeTelegram, gateway: GatewayProcess) -> None:
    quiet_everywhere(fake)  # the injected failures must hit this test's answer
    failures_before = metric(gateway.metrics(), "kefu_gateway_delivery_failures_total",
                             channel="telegram")
    fake.fail_next("sendMessage", times=2)
    fake.push_text(RETRY_USER, "你好")

    (answer,) = fake.wait_for_sent(RETRY_USER, 1, timeout=WAIT)  # backoff 5 s, then 10 s
    assert "您好" in answer["text"]
    attempts = [c for c in fake.calls("sendMessage") if c.get("chat_id") == RETRY_USER]
    assert len(attempts) == 3, attempts
    # the first answer the user actually sees still offers to verify
    assert contact_buttons(answer), answer
    quiet(fake, RETRY_USER, 1)
    failures = metric(gateway.metrics(), "kefu_gateway_delivery_failures_total",
                      channel="telegram")
    assert failures - failures_before >= 2


# -- 8. webhook mode ---------------------------------------------------------------------------

def test_webhook_mode_checks_the_secret(
        live_stack: LiveAssistant, gateway: GatewayProcess, desk: Desk) -> None:
    """A second gateway in webhook mode. The polling one is stopped meanwhile: both share the
    database, and its outbox poller would otherwise deliver this test's answers to its own
    fake Telegram."""
    secret = "kefu-webhook-Secret_1"
    gateway.stop()
    try:
        with FakeTelegram() as tg:
            hook = GatewayProcess(live_stack, name="gateway-webhook")
            url = f"{hook.url}/telegram/webhook"
            hook.env.update(telegram_env(tg), KEFU_TELEGRAM_WEBHOOK_URL=url,
                            KEFU_TELEGRAM_WEBHOOK_SECRET=secret)
            hook.start()
            try:
                assert tg.calls("setWebhook"), "setWebhook was not called"
                assert tg.webhook is not None
                assert tg.webhook["url"] == url and tg.webhook["secret_token"] == secret

                # this fake numbers its updates from 1001 again, like the first one did: a
                # reused update_id is not a redelivery when the message is another one
                good = tg.push_text(WEBHOOK_USER, "你好")
                assert tg.post_webhook(good, secret_token=secret) == 200
                answer = tg.wait_for_sent(WEBHOOK_USER, 1, timeout=WAIT)[0]
                assert "您好" in answer["text"]

                wrong = tg.push_text(WEBHOOK_REFUSED, "你好")
                assert tg.post_webhook(wrong, secret_token="not-the-secret") == 403
                missing = tg.push_text(WEBHOOK_REFUSED, "hello")
                assert tg.post_webhook(missing) == 403
                # the secret is checked before a stranger's body is read (403, not 400)
                assert httpx.post(url, content=b"[" * 1000, timeout=WAIT, headers={
                    "X-Telegram-Bot-Api-Secret-Token": "not-the-secret",
                    "Content-Type": "application/json"}).status_code == 403
                quiet(tg, WEBHOOK_REFUSED, 0)
                quiet(tg, WEBHOOK_USER, 1, seconds=0)
                assert desk.inbound(conversation(WEBHOOK_REFUSED)) == []
                assert not tg.calls("getUpdates")  # webhook mode never polls
            finally:
                hook.stop()
    finally:
        gateway.start()
