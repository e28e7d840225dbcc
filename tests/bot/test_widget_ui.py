"""The web chat widget in real Chromium against a fake gateway (tests/bot/widget_fake_gateway.py).

Covers what only a browser shows: rendering, delivery states, buttons, reconnect with the
pending queue, local refusals and the two UI languages. The real gateway has its own tests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.bot.browser import chromium, screenshot_on_failure
from tests.bot.widget_fake_gateway import FakeGateway

pytestmark = pytest.mark.timeout(60)

TIMEOUT_MS = 8000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context: empty localStorage, so every test is a new visitor."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


# ---- helpers ------------------------------------------------------------------------------

def wait_until(check: Callable[[], bool], timeout: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def open_shop(page: Page, gateway: FakeGateway, *, lang: str = "en", token: str = "",
              open_panel: bool = True, wait_connected: bool = True) -> None:
    page.goto(f"{gateway.url}/?lang={lang}&token={token}")
    if open_panel:
        page.locator(".kefu-launcher").click()
        expect(page.locator(".kefu-panel")).to_be_visible()
    if wait_connected:
        expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")


def visitor_of(page: Page) -> str:
    return str(page.evaluate("localStorage.getItem('kefu.visitor')"))


def type_and_send(page: Page, text: str) -> None:
    page.locator(".kefu-input").fill(text)
    page.locator(".kefu-input").press("Enter")


def own(page: Page, text: str) -> Any:
    return page.locator(".kefu-msg[data-direction='in']").filter(has_text=text)


def bot(page: Page, text: str) -> Any:
    return page.locator(".kefu-msg[data-direction='out']").filter(has_text=text)


def pending(page: Page) -> list[dict[str, Any]]:
    return json.loads(page.evaluate("localStorage.getItem('kefu.pending') || '[]'"))


# ---- tests ----------------------------------------------------------------------------------

@screenshot_on_failure
def test_send_shows_delivered_typing_and_echo(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "你好 hello")
    mine = own(page, "你好 hello")
    expect(mine).to_have_count(1)
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    expect(mine.locator(".kefu-state")).to_have_text("Delivered")
    expect(mine).to_have_attribute("data-id", re.compile(r"^in-\d+$"))
    echo = bot(page, "echo: 你好 hello")
    expect(echo).to_have_count(1)
    expect(echo).to_have_attribute("data-kind", "bot")
    expect(echo.locator("button.kefu-button")).to_have_count(2)
    expect(echo.locator("button.kefu-button").first).to_be_enabled()
    expect(page.locator(".kefu-input")).to_have_value("")

    type_and_send(page, "slow question")
    expect(page.locator(".kefu-typing")).to_be_visible()
    expect(page.locator(".kefu-typing .kefu-dot")).to_have_count(3)
    expect(bot(page, "echo: slow question")).to_have_count(1)
    expect(page.locator(".kefu-typing")).to_be_hidden()

    echo_id = echo.get_attribute("data-id")
    wait_until(lambda: {"type": "ack", "id": echo_id} in gateway.frames("ack"))
    first = gateway.connection_frames()[-1][0]
    assert first == {"type": "hello", "visitor": visitor_of(page), "token": None,
                     "language": "en"}
    assert re.fullmatch(r"v-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        visitor_of(page))
    assert pending(page) == []


@screenshot_on_failure
def test_button_click_sends_title_and_payload_and_old_buttons_disable(
        page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "need help")
    first_echo = bot(page, "echo: need help")
    expect(first_echo.locator("button.kefu-button")).to_have_count(2)

    first_echo.locator("button.kefu-button[data-payload='/human']").click()
    wait_until(lambda: any(f.get("payload") == "/human" for f in gateway.frames("message")))
    sent = [f for f in gateway.frames("message") if f.get("payload") == "/human"]
    assert len(sent) == 1
    assert sent[0]["text"] == "转人工 / Human" and sent[0]["client_id"].startswith("m-")

    second_echo = bot(page, "echo: 转人工 / Human")
    expect(second_echo).to_have_count(1)
    for button in first_echo.locator("button.kefu-button").all():
        expect(button).to_be_disabled()
    for button in second_echo.locator("button.kefu-button").all():
        expect(button).to_be_enabled()


@screenshot_on_failure
def test_reload_rerenders_history_from_welcome(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "first question")
    expect(bot(page, "echo: first question")).to_have_count(1)
    type_and_send(page, "second question")
    expect(bot(page, "echo: second question")).to_have_count(1)
    visitor = visitor_of(page)
    gateway.push(visitor, "李 is here", kind="agent_reply", agent="Li")
    expect(bot(page, "李 is here")).to_have_count(1)

    page.reload()
    # The panel stays open across a reload (sessionStorage); no click needed.
    expect(page.locator(".kefu-panel")).to_be_visible()
    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    assert visitor_of(page) == visitor
    ids = [e["id"] for e in gateway.history(visitor)]
    expect(page.locator(".kefu-msg")).to_have_count(len(ids))
    assert page.locator(".kefu-msg").evaluate_all("ns => ns.map(n => n.dataset.id)") == ids
    texts = page.locator(".kefu-msg .kefu-bubble").all_text_contents()
    assert texts == ["first question", "echo: first question", "second question",
                     "echo: second question", "李 is here"]
    for state in page.locator(".kefu-msg[data-direction='in'] .kefu-state").all():
        expect(state).to_have_attribute("data-state", "received")
    expect(page.locator(".kefu-msg[data-kind='agent_reply'] .kefu-label")).to_have_text("Agent Li")
    # Only the newest outgoing entry's buttons are live.
    expect(page.locator("button.kefu-button:enabled")).to_have_count(0)
    expect(bot(page, "echo: second question").locator("button.kefu-button")).to_have_count(2)


@screenshot_on_failure
def test_message_typed_while_disconnected_is_delivered_once_after_reconnect(
        page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "before the cut")
    expect(bot(page, "echo: before the cut")).to_have_count(1)
    refused_before = gateway.refused()

    gateway.set_accepting(False)
    try:
        gateway.drop_all()
        expect(page.locator(".kefu-banner")).to_be_visible()
        expect(page.locator(".kefu-banner")).to_have_text("Connecting…")
        type_and_send(page, "typed offline")
        mine = own(page, "typed offline")
        expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "sending")
        expect(mine.locator(".kefu-state")).to_have_text("Sending…")
        client_id = mine.get_attribute("data-client-id")
        assert client_id and client_id.startswith("m-")
        assert [p["client_id"] for p in pending(page)] == [client_id]
        time.sleep(1.2)  # the widget retries (0.5 s, then 1 s) and is refused
        assert gateway.message_frames(client_id) == 0
        assert 1 <= gateway.refused() - refused_before <= 3  # backoff, not a busy loop
    finally:
        gateway.set_accepting(True)

    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    expect(bot(page, "echo: typed offline")).to_have_count(1)
    expect(page.locator(f".kefu-msg[data-client-id='{client_id}']")).to_have_count(1)
    assert gateway.message_frames(client_id) == 1
    assert [e["client_id"] for e in gateway.history(visitor_of(page))
            if e.get("client_id") == client_id] == [client_id]
    assert pending(page) == []
    expect(page.locator(".kefu-banner")).to_be_hidden()
    # Every connection starts with hello.
    assert all(frames[0]["type"] == "hello" for frames in gateway.connection_frames() if frames)


@screenshot_on_failure
def test_stored_message_whose_receipt_was_lost_is_not_resent(
        page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "noreceipt please")
    expect(bot(page, "echo: noreceipt please")).to_have_count(1)
    mine = own(page, "noreceipt please")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "sending")
    client_id = mine.get_attribute("data-client-id")
    assert client_id

    gateway.drop_all()
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    expect(page.locator(f".kefu-msg[data-client-id='{client_id}']")).to_have_count(1)
    assert gateway.message_frames(client_id) == 1
    assert pending(page) == []


@screenshot_on_failure
def test_message_never_confirmed_on_a_live_socket_is_sent_again(
        page: Page, gateway: FakeGateway) -> None:
    page.clock.install()
    open_shop(page, gateway)
    type_and_send(page, "!lost in the wire")
    mine = own(page, "!lost in the wire")
    client_id = mine.get_attribute("data-client-id")
    wait_until(lambda: gateway.message_frames(client_id) == 1)
    page.clock.run_for(14_000)  # not yet: a slow turn is not a lost frame
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "sending")
    assert gateway.message_frames(client_id) == 1
    page.clock.run_for(2_000)
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    expect(bot(page, "echo: !lost in the wire")).to_have_count(1)
    assert gateway.message_frames(client_id) == 2
    assert pending(page) == []
    page.clock.run_for(120_000)  # confirmed: never sent a third time
    assert gateway.message_frames(client_id) == 2


@screenshot_on_failure
def test_pending_message_survives_a_reload(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    gateway.set_accepting(False)
    try:
        gateway.drop_all()
        expect(page.locator(".kefu-banner")).to_be_visible()
        client_id = page.evaluate("KefuWidget.send('sent before reload')")
        page.reload()
        # Shown as "sending" straight away, before any connection.
        expect(own(page, "sent before reload").locator(".kefu-state")).to_have_attribute(
            "data-state", "sending")
        assert [p["client_id"] for p in pending(page)] == [client_id]
    finally:
        gateway.set_accepting(True)
    mine = own(page, "sent before reload")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    expect(bot(page, "echo: sent before reload")).to_have_count(1)
    assert gateway.message_frames(client_id) == 1


@screenshot_on_failure
def test_too_long_message_is_refused_locally(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    too_long = "字" * 4001
    type_and_send(page, too_long)
    expect(page.locator(".kefu-system[data-code='too_long']")).to_have_text(
        "Message too long: at most 4000 characters. Please shorten it.")
    expect(page.locator(".kefu-msg[data-direction='in']")).to_have_count(0)
    expect(page.locator(".kefu-input")).to_have_value(too_long)  # kept for shortening
    assert page.evaluate("KefuWidget.send('x'.repeat(4001))") is None
    time.sleep(0.3)
    assert all(len(f["text"]) <= 4000 for f in gateway.frames("message"))

    just_fits = "字" * 4000
    type_and_send(page, just_fits)
    expect(own(page, just_fits).locator(".kefu-state")).to_have_attribute("data-state", "received")


@screenshot_on_failure
def test_error_frames_show_server_text_and_set_delivery_state(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    type_and_send(page, "!ratelimit")
    expect(page.locator(".kefu-system[data-code='rate_limited']")).to_have_text(
        "Too many messages, please wait a moment.")
    # Stored, only refused an answer: it stays delivered.
    expect(own(page, "!ratelimit").locator(".kefu-state")).to_have_attribute(
        "data-state", "received")
    assert pending(page) == []

    type_and_send(page, "!unavailable for a moment")
    expect(page.locator(".kefu-system[data-code='unavailable']")).to_have_text(
        "The service is briefly unavailable.")
    mine = own(page, "!unavailable for a moment")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "sending")
    client_id = mine.get_attribute("data-client-id")
    # Kept in the queue and tried again a few seconds later, on the same socket.
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    assert gateway.message_frames(client_id) == 2
    assert pending(page) == []
    assert gateway.open_sockets() >= 1

    # A server with a lower limit (KEFU_MAX_MESSAGE_CHARS) refuses it for good: "not sent".
    type_and_send(page, "!toolong by the server's measure")
    expect(page.locator(".kefu-system[data-code='too_long']")).to_have_text(
        "Message too long (server).")
    refused = own(page, "!toolong by the server's measure")
    expect(refused.locator(".kefu-state")).to_have_attribute("data-state", "failed")
    expect(refused.locator(".kefu-state")).to_have_text("Not sent")
    assert pending(page) == []


@screenshot_on_failure
def test_message_text_is_shown_as_text_never_html(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway)
    evil = '<img src=x onerror="window.__pwned=1"><b>bold</b> see https://shop.example/a?b=1'
    type_and_send(page, evil)
    echo = bot(page, "echo: <img")
    expect(echo).to_have_count(1)
    expect(echo.locator(".kefu-bubble")).to_have_text("echo: " + evil)
    expect(page.locator(".kefu-messages img, .kefu-messages b")).to_have_count(0)
    assert page.evaluate("window.__pwned === undefined")
    link = echo.locator("a.kefu-link")
    expect(link).to_have_attribute("href", "https://shop.example/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")


@screenshot_on_failure
def test_chinese_ui_texts(page: Page, gateway: FakeGateway) -> None:
    gateway.set_accepting(False)
    try:
        open_shop(page, gateway, lang="zh", wait_connected=False)
        expect(page.locator(".kefu-title")).to_have_text("在线客服")
        expect(page.locator(".kefu-banner")).to_have_text("连接中…")
        expect(page.locator(".kefu-input")).to_have_attribute("placeholder", "请输入消息…")
        expect(page.locator(".kefu-send")).to_have_text("发送")
        page.evaluate("KefuWidget.send('中文消息')")
        expect(own(page, "中文消息").locator(".kefu-state")).to_have_text("发送中…")
    finally:
        gateway.set_accepting(True)
    expect(own(page, "中文消息").locator(".kefu-state")).to_have_text("已送达")
    expect(page.locator(".kefu-banner")).to_be_hidden()
    gateway.push(visitor_of(page), "您好，我是李", kind="agent_reply", agent="Li")
    expect(page.locator(".kefu-msg[data-kind='agent_reply'] .kefu-label")).to_have_text("客服 Li")
    hello = [f for f in gateway.frames("hello") if f["visitor"] == visitor_of(page)]
    assert hello and all(f["language"] == "zh" for f in hello)
    page.locator(".kefu-input").fill("字" * 4001)
    page.locator(".kefu-send").click()
    expect(page.locator(".kefu-system[data-code='too_long']")).to_have_text(
        "消息太长，最多 4000 个字符，请缩短后再发送。")


@screenshot_on_failure
def test_english_ui_texts_and_language_defaults_to_the_browser(
        page: Page, gateway: FakeGateway, browser: Browser) -> None:
    open_shop(page, gateway, lang="en")
    expect(page.locator(".kefu-title")).to_have_text("Customer service")
    expect(page.locator(".kefu-input")).to_have_attribute("placeholder", "Type a message…")
    expect(page.locator(".kefu-send")).to_have_text("Send")
    expect(page.locator(".kefu-launcher")).to_have_attribute("aria-label",
                                                             "Open customer service chat")
    gateway.push(visitor_of(page), "Hello, Li here", kind="agent_reply", agent="Li")
    expect(page.locator(".kefu-msg[data-kind='agent_reply'] .kefu-label")).to_have_text("Agent Li")

    # No data-kefu-lang (the placeholder replaced by ""): the browser's language decides.
    context = browser.new_context(locale="zh-CN")
    try:
        zh_page = context.new_page()
        zh_page.goto(f"{gateway.url}/?lang=")
        expect(zh_page.locator(".kefu-title")).to_have_text("在线客服")
        zh_page.goto(f"{gateway.url}/?lang=en")
        expect(zh_page.locator(".kefu-title")).to_have_text("Customer service")
    finally:
        context.close()


@screenshot_on_failure
def test_pushed_notice_and_unread_badge_while_closed(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway, open_panel=False)
    expect(page.locator(".kefu-panel")).to_be_hidden()
    visitor = visitor_of(page)
    gateway.push(visitor, "An agent will join shortly.", kind="notice")
    gateway.push(visitor, "How would you rate us?", kind="csat_request",
                 buttons=[{"title": "★★★★★", "payload": '/rate{"score":5}'}])
    expect(page.locator(".kefu-badge")).to_have_text("2")
    page.evaluate("KefuWidget.open()")
    expect(page.locator(".kefu-badge")).to_be_hidden()
    expect(page.locator(".kefu-msg[data-kind='notice']")).to_have_text("An agent will join shortly.")
    rate = page.locator("button.kefu-button[data-payload='/rate{\"score\":5}']")
    expect(rate).to_be_enabled()
    rate.click()
    wait_until(lambda: any(f.get("payload") == '/rate{"score":5}'
                           for f in gateway.frames("message")))
    expect(rate).to_be_disabled()  # one press per entry
    page.evaluate("KefuWidget.close()")
    expect(page.locator(".kefu-panel")).to_be_hidden()
    page.locator(".kefu-launcher").click()
    expect(page.locator(".kefu-panel")).to_be_visible()
    page.locator(".kefu-close").click()
    expect(page.locator(".kefu-panel")).to_be_hidden()


@screenshot_on_failure
def test_token_is_sent_and_empty_token_means_anonymous(page: Page, gateway: FakeGateway) -> None:
    open_shop(page, gateway, token="42.1900000000.abc")
    hello = [f for f in gateway.frames("hello") if f["visitor"] == visitor_of(page)]
    assert hello[-1]["token"] == "42.1900000000.abc"
    expect(page.locator("#account")).to_have_text("未登录 / Not signed in")
    css = page.evaluate("[...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href)")
    assert f"{gateway.url}/widget.css" in css


@screenshot_on_failure
def test_panel_is_full_screen_on_a_phone(page: Page, gateway: FakeGateway) -> None:
    page.set_viewport_size({"width": 375, "height": 667})
    open_shop(page, gateway)
    box = page.locator(".kefu-panel").bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 667)
    type_and_send(page, "from a phone")
    expect(bot(page, "echo: from a phone")).to_be_in_viewport()
