"""The widget in real Chromium against the real services (`make run` style): gateway process,
Rasa, action server and the SQLite demo shop.

A signed-in customer opens the demo page, asks about an order, clicks an order button,
reloads and sees the history, is handed off and receives the agent's reply. Screenshots go to
tests/artifacts/ when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.assistant.live import LiveAssistant
from tests.bot.browser import ARTIFACTS, chromium, screenshot_on_failure
from tests.bot.gateway_harness import Desk, GatewayProcess, demo_customer

pytestmark = pytest.mark.timeout(300)

ANSWER_MS = 60_000  # a Rasa turn on a loaded 2-core machine


@pytest.fixture(scope="module")
def gateway(live_stack: LiveAssistant) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(live_stack, name="gateway-browser").start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    pg.set_default_timeout(ANSWER_MS)
    yield pg
    context.close()


def send(page: Page, text: str) -> None:
    page.locator(".kefu-input").fill(text)
    page.locator(".kefu-input").press("Enter")


def out(page: Page) -> Any:
    return page.locator(".kefu-msg[data-direction='out']")


@screenshot_on_failure
def test_customer_orders_button_reload_handoff_and_agent_reply(
        *, page: Page, gateway: GatewayProcess, live_stack: LiveAssistant, desk: Desk) -> None:
    customer_id, name = demo_customer(live_stack.database_url, nth=1)  # nth=0: the socket tests
    page.goto(f"{gateway.url}/?customer={customer_id}&lang=zh")
    expect(page.locator("body")).to_contain_text(name)
    page.locator(".kefu-launcher").click()
    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    expect(page.locator(".kefu-panel")).to_contain_text("在线客服")

    send(page, "我的订单到哪了")
    mine = page.locator(".kefu-msg[data-direction='in']").filter(has_text="我的订单到哪了")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received")
    buttons = page.locator("button.kefu-button:not([disabled])")
    expect(buttons.first).to_be_visible()
    payload = buttons.first.get_attribute("data-payload") or ""
    assert payload.startswith("/track_order"), payload
    last4 = payload.split('"')[-2][-4:]
    answers_before = out(page).count()
    buttons.first.click()
    expect(out(page).nth(answers_before)).to_be_visible()
    expect(out(page).last).to_contain_text(last4)

    shown = out(page).count()
    page.reload()
    if not page.locator(".kefu-panel").is_visible():
        page.locator(".kefu-launcher").click()
    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    expect(out(page)).to_have_count(shown)  # the history is back after the reload
    expect(page.locator(".kefu-msg[data-direction='in']").filter(
        has_text="我的订单到哪了")).to_have_count(1)

    send(page, "我要投诉，快递员态度很差")
    expect(out(page).filter(has_text="工单").last).to_be_visible()
    ticket_id = desk.handed_off_ticket(f"widget:c-{customer_id}")
    assert ticket_id is not None
    desk.reply(ticket_id, "您好，我是客服小李，已经联系快递公司核实")
    reply = page.locator(".kefu-msg[data-kind='agent_reply']").filter(has_text="已经联系快递公司核实")
    expect(reply).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-agent-reply.png"))


@screenshot_on_failure
def test_anonymous_english_visitor_is_asked_to_sign_in(*, page: Page,
                                                       gateway: GatewayProcess) -> None:
    page.goto(f"{gateway.url}/?lang=en")
    page.locator(".kefu-launcher").click()
    expect(page.locator(".kefu-root")).to_have_attribute("data-connected", "true")
    send(page, "where is my order?")
    expect(out(page).last).to_contain_text("verify")
    send(page, "do you have bluetooth headphones?")
    expect(out(page)).to_have_count(2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-english.png"))
