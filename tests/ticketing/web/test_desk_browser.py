"""The desk's whole loop in real Chromium against the real services (`make run` style): Rasa, the
action server, the gateway (``python -m bot``) and the desk web (``python -m ticketing.web``) as
processes over one temporary SQLite demo shop, no Redis (the desk's live streams poll).

A signed-in customer asks the widget for a person; the ticket appears live in an agent's open
queue; the agent claims it and replies; the reply reaches the widget; the customer's answer
appears live on the agent's ticket page; the agent solves it, the customer rates 5 in the widget
and the score shows on the ticket page. And two agents claiming one ticket at the same moment:
one wins, the other is told who owns it.

Live updates must show "within 2 s"; the test allows LIVE_MS (a loaded 2-core CI machine) and
prints what it measured. Always saves tests/artifacts/desk-queue.png (the queue with the live
ticket) and desk-ticket.png (the ticket page after the customer's answer); every page on failure.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from bot.rasa_config import ROOT
from tests.assistant.live import LiveAssistant
from tests.bot.browser import ARTIFACTS, chromium
from tests.bot.gateway_harness import Desk, GatewayProcess
from tests.ticketing.web.desk_stack import (
    DEMO_PASSWORD,
    DeskWebProcess,
    agent_name,
    customer_phone,
    fresh_customers,
    live_log,
    open_ticket,
    record_live,
    screenshots_on_failure,
    solve_ticket,
    survey_of,
    ticket_facts,
)

pytestmark = pytest.mark.timeout(300)

MODEL = ROOT / "models" / "kefu.tar.gz"
# Every wait is explicit (Playwright's expect() defaults to 5 s, whatever the page's timeout):
ANSWER_MS = 60_000  # a Rasa turn on a loaded 2-core machine
STEP_MS = 30_000  # a page load, a desk action's answer
LIVE_MS = 10_000  # a live update: the requirement is 2 s; the delays are printed
AGENT, RIVAL = "xiaomei", "lucy"  # both L1 frontline: they see the team's unclaimed L1 tickets
LIVE_ON = re.compile(r"\bon\b")
PHONE_LIKE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")  # a mainland mobile number


# --- the stack: one per module, stopped before other modules start theirs ------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does)")
    var: Path = tmp_path_factory.mktemp("desk-browser-stack")
    live = LiveAssistant(var)
    live.seed()
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def gateway(stack: LiveAssistant) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(stack, name="gateway-desk-browser").start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def desk_web(stack: LiveAssistant) -> Iterator[DeskWebProcess]:
    web = DeskWebProcess(stack, name="desk-web-browser").start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def desk(stack: LiveAssistant) -> Iterator[Desk]:
    d = Desk(stack.database_url)
    yield d
    d.close()


@pytest.fixture(scope="module")
def customers(stack: LiveAssistant) -> list[tuple[int, str]]:
    return fresh_customers(stack.database_url, 3)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _page(browser: Browser, *, desk: bool) -> tuple[BrowserContext, Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    if desk:
        record_live(page)
    return context, page


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """The agent's desk."""
    context, pg = _page(browser, desk=True)
    yield pg
    context.close()


@pytest.fixture
def widget(browser: Browser) -> Iterator[Page]:
    """The customer's shop page with the chat widget."""
    context, pg = _page(browser, desk=False)
    yield pg
    context.close()


@pytest.fixture
def rival(browser: Browser) -> Iterator[Page]:
    """A second agent's desk, in its own browser context (own cookies)."""
    context, pg = _page(browser, desk=True)
    yield pg
    context.close()


# --- helpers ----------------------------------------------------------------------------------
def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[desk-browser] {line}", end="")


def sign_in(page: Page, desk_web: DeskWebProcess, login: str, target: str) -> None:
    """The login form, then ``target``, live."""
    page.goto(f"{desk_web.url}/login")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("form.signin-card button[type=submit]").click()
    expect(page.locator(".me-name")).to_be_visible(timeout=STEP_MS)
    page.goto(desk_web.url + target)
    connected(page)


def connected(page: Page) -> None:
    """Waits until the page's live stream is up; marks the page to tell a reload later."""
    expect(page.locator("#kefu-live-state")).to_have_class(LIVE_ON, timeout=STEP_MS)
    page.evaluate("window.__kefuSamePage = true")  # gone if the page reloads


def same_page(page: Page) -> bool:
    return page.evaluate("window.__kefuSamePage === true")


def live(page: Page, locator: Locator, desk_web: DeskWebProcess, what: str) -> float:
    """Seconds until ``locator`` is visible on ``page`` without a reload (at most LIVE_MS);
    otherwise fails with what the page received live and the desk web's log."""
    start = time.monotonic()
    try:
        expect(locator).to_be_visible(timeout=LIVE_MS)
    except AssertionError:
        raise AssertionError(f"{what} within {LIVE_MS / 1000:.0f}s\n--- live log of the page\n"
                             f"{live_log(page)}\n--- desk web log\n{desk_web.logs()}") from None
    assert same_page(page), f"{what}: the page was reloaded"
    return time.monotonic() - start


def send(widget: Page, text: str) -> None:
    widget.locator(".kefu-input").fill(text)
    widget.locator(".kefu-input").press("Enter")


def out(widget: Page) -> Locator:
    return widget.locator(".kefu-msg[data-direction='out']")


def save(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def wait_until(check: Any, what: str, timeout_ms: int) -> None:
    deadline = time.monotonic() + timeout_ms / 1000
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


# --- the loop ---------------------------------------------------------------------------------
@screenshots_on_failure
def test_handoff_live_queue_claim_reply_answer_solve_and_csat(
        *, page: Page, widget: Page, gateway: GatewayProcess, desk_web: DeskWebProcess,
        stack: LiveAssistant, desk: Desk, customers: list[tuple[int, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    customer_id, customer_name = customers[0]
    conversation = f"widget:c-{customer_id}"
    me = agent_name(stack.database_url, AGENT)

    # the agent has the team's unclaimed tickets open, live
    sign_in(page, desk_web, AGENT, "/?queue=team")
    expect(page.locator(".queue-tab.active")).to_contain_text("团队待领取", timeout=STEP_MS)

    # 1. the customer asks the widget for a person; the bot tells the ticket number
    widget.goto(f"{gateway.url}/?customer={customer_id}&lang=zh")
    expect(widget.locator("body")).to_contain_text(customer_name, timeout=STEP_MS)
    widget.locator(".kefu-launcher").click()
    expect(widget.locator(".kefu-root")).to_have_attribute("data-connected", "true",
                                                           timeout=STEP_MS)
    send(widget, "转人工")
    told = out(widget).filter(has_text="工单号").last
    expect(told).to_be_visible(timeout=ANSWER_MS)
    told_at = time.monotonic()
    found = re.search(r"工单号\s*(T\d+)", told.inner_text())
    assert found, told.inner_text()
    number = found.group(1)
    ticket_id = desk.handed_off_ticket(conversation)
    assert ticket_id is not None
    facts = ticket_facts(stack.database_url, ticket_id)
    assert facts["number"] == number and facts["owner"] is None, facts

    # 2. it appears in the agent's open queue without a reload
    row = page.locator("tr.queue-row", has=page.locator("a.number", has_text=number))
    live(page, row, desk_web, f"new ticket {number} not in the open queue")
    after_told = time.monotonic() - told_at
    created = facts["created_at"]
    created = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    after_created = (datetime.now(timezone.utc) - created).total_seconds()
    expect(row).to_contain_text(customer_name, timeout=STEP_MS)
    expect(row).to_contain_text("转人工", timeout=STEP_MS)
    save(page, "desk-queue.png")
    report(capsys, f"new ticket {number} in the open queue: {after_told:.2f}s after the widget "
                   f"showed its number, {after_created:.2f}s after it was created")

    # 3. the agent opens it, claims it and replies; the reply reaches the widget
    row.locator("a.number").click()
    expect(page).to_have_url(re.compile(rf"/tickets/{ticket_id}$"), timeout=STEP_MS)
    connected(page)
    expect(page.locator("#thread")).to_contain_text("转人工", timeout=STEP_MS)  # the transcript
    page.locator("form.action-claim button[type=submit]").click()
    expect(page.locator("#ticket-head")).to_contain_text(me, timeout=STEP_MS)
    page.locator("#reply-body").fill("您好，我来帮您处理")
    page.locator("form.action-reply button[type=submit]").click()
    sent_at = time.monotonic()
    reply = widget.locator(".kefu-msg[data-kind='agent_reply']").filter(
        has_text="您好，我来帮您处理")
    expect(reply).to_be_visible(timeout=LIVE_MS)
    report(capsys, f"agent's reply in the widget: {time.monotonic() - sent_at:.2f}s after Send")
    expect(page.locator("#thread .msg-agent").filter(has_text="您好，我来帮您处理")
           ).to_be_visible(timeout=STEP_MS)

    # 4. the customer answers in the widget; it appears live on the open ticket page
    send(widget, "好的，订单一直没发货，麻烦帮我查一下")
    mine = widget.locator(".kefu-msg[data-direction='in']").filter(has_text="麻烦帮我查一下")
    expect(mine.locator(".kefu-state")).to_have_attribute("data-state", "received",
                                                          timeout=STEP_MS)
    delay = live(page, page.locator("#thread .msg-customer").filter(has_text="麻烦帮我查一下"),
                 desk_web, "the customer's answer not on the open ticket page")
    report(capsys, f"customer's answer on the open ticket page: {delay:.2f}s after the widget "
                   f"marked it received")
    save(page, "desk-ticket.png")

    # 5. the agent solves it; the customer gets the survey and taps 5; the score shows
    page.locator("form.action-solve textarea[name=resolution]").fill("已催促仓库发货，今天内发出")
    page.locator("form.action-solve button[type=submit]").click()
    expect(page.locator("#ticket-head")).to_contain_text("已解决", timeout=STEP_MS)
    buttons = out(widget).last.locator("button.kefu-button:not([disabled])")
    expect(buttons).to_have_count(5, timeout=ANSWER_MS)  # the survey: 1…5
    five = buttons.nth(4)
    assert (five.get_attribute("data-payload") or "").endswith('"csat_score": 5}'), \
        five.get_attribute("data-payload")
    five.click()
    wait_until(lambda: desk.survey_score(ticket_id) == 5, "the score was not recorded", ANSWER_MS)
    rated_at = time.monotonic()
    score = page.locator("#ticket-events .event-csat_rated .csat-5")
    try:  # live is better; after a reload is what this step must have
        expect(score).to_be_visible(timeout=LIVE_MS)
        report(capsys, f"score 5 on the open ticket page: {time.monotonic() - rated_at:.2f}s "
                       f"after it was recorded (live)")
    except AssertionError:
        report(capsys, f"score 5 not shown live within {LIVE_MS / 1000:.0f}s; reloading")
    page.reload()
    expect(score).to_contain_text("5/5", timeout=STEP_MS)
    expect(page.locator("#ticket-head")).to_contain_text("已催促仓库发货", timeout=STEP_MS)
    assert desk.handed_off_ticket(conversation) is None  # back to the bot


# --- two agents, one ticket ----------------------------------------------------------------------
CLAIM_AT = ("(at) => { const form = document.querySelector('form.action-claim');"
            " setTimeout(() => form.requestSubmit(), Math.max(0, at - Date.now())); }")


@screenshots_on_failure
def test_two_agents_claim_at_once_one_wins_the_other_is_told_who(
        *, page: Page, rival: Page, desk_web: DeskWebProcess, stack: LiveAssistant,
        customers: list[tuple[int, str]], capsys: pytest.CaptureFixture[str]) -> None:
    customer_id, _ = customers[1]
    ticket_id, number = open_ticket(stack.database_url, customer_id=customer_id,
                                    text="我要找人工客服")
    names = {AGENT: agent_name(stack.database_url, AGENT),
             RIVAL: agent_name(stack.database_url, RIVAL)}
    sign_in(page, desk_web, AGENT, f"/tickets/{ticket_id}")
    sign_in(rival, desk_web, RIVAL, f"/tickets/{ticket_id}")
    for p in (page, rival):
        expect(p.locator("form.action-claim button[type=submit]")).to_be_visible(timeout=STEP_MS)

    def is_claim(response: Any) -> bool:
        return response.url.endswith(f"/api/v1/tickets/{ticket_id}/claim")

    # both pages submit their claim form at the same instant (one clock: this machine's)
    at = page.evaluate("Date.now()") + 600
    with page.expect_response(is_claim, timeout=STEP_MS) as first, \
            rival.expect_response(is_claim, timeout=STEP_MS) as second:
        page.evaluate(CLAIM_AT, at)
        rival.evaluate(CLAIM_AT, at)
    answers = {AGENT: first.value, RIVAL: second.value}
    statuses = {login: r.status for login, r in answers.items()}
    assert sorted(statuses.values()) == [200, 409], statuses
    winner = next(login for login, s in statuses.items() if s == 200)
    loser = RIVAL if winner == AGENT else AGENT
    apart = abs(answers[AGENT].request.timing["startTime"]
                - answers[RIVAL].request.timing["startTime"])
    report(capsys, f"claim race on {number}: sent {apart:.0f}ms apart; {winner} won, "
                   f"{loser} got 409")

    facts = ticket_facts(stack.database_url, ticket_id)
    assert facts["owner"] == winner and facts["events"].count("claimed") == 1, facts
    refused = answers[loser].json()["error"]
    assert names[winner] in refused["message"], refused  # 该工单已被 {name} 领取。

    pages = {AGENT: page, RIVAL: rival}
    won, lost = pages[winner], pages[loser]
    expect(won.locator("#ticket-head")).to_contain_text(names[winner], timeout=STEP_MS)
    expect(won.locator("form.action-reply")).to_be_visible(timeout=STEP_MS)
    # the loser's page says who owns it, without a reload: the refusal as a toast at once, the
    # header when the live update comes
    expect(lost.locator("#kefu-toasts .toast-error")).to_contain_text(
        f"该工单已被 {names[winner]} 领取", timeout=STEP_MS)
    told = live(lost, lost.locator("#ticket-head").filter(has_text=names[winner]), desk_web,
                "the loser's header does not name the owner")
    report(capsys, f"the loser's header named the owner {told:.2f}s after the 409 arrived")


# --- the manager: a rating just given, on the dashboard, drilled into and exported -------------
def figure(page: Page, key: str) -> tuple[str, int]:
    """A dashboard figure's value and sample size ``n``."""
    box = page.locator(f".figure[data-key='{key}']")
    n = re.search(r"n=(\d+)", box.locator(".figure-meta").inner_text())
    return box.locator(".figure-value").inner_text().strip(), int(n.group(1)) if n else 0


@screenshots_on_failure
def test_a_manager_sees_a_fresh_rating_drills_into_it_and_exports_it(
        *, page: Page, widget: Page, gateway: GatewayProcess, desk_web: DeskWebProcess,
        stack: LiveAssistant, customers: list[tuple[int, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    customer_id, customer_name = customers[2]
    ticket_id, number = open_ticket(stack.database_url, customer_id=customer_id,
                                    text="我要找人工客服，快递一直没到")
    sign_in(page, desk_web, "manager", "/reports")
    _, rated_before = figure(page, "csat")

    # the customer has the widget open; the ticket is solved; the survey comes; 2 stars
    widget.goto(f"{gateway.url}/?customer={customer_id}&lang=zh")
    expect(widget.locator("body")).to_contain_text(customer_name, timeout=STEP_MS)
    widget.locator(".kefu-launcher").click()
    expect(widget.locator(".kefu-root")).to_have_attribute("data-connected", "true",
                                                           timeout=STEP_MS)
    solve_ticket(stack.database_url, ticket_id=ticket_id, login=AGENT,
                 reply="已联系快递，明天送达", resolution="已催快递，明天送达")
    buttons = out(widget).last.locator("button.kefu-button:not([disabled])")
    expect(buttons).to_have_count(5, timeout=ANSWER_MS)
    buttons.nth(1).click()
    wait_until(lambda: survey_of(stack.database_url, ticket_id)[0] == 2,
               "the score was not recorded", ANSWER_MS)
    expect(out(widget).last).to_be_visible(timeout=ANSWER_MS)
    send(widget, "回复太慢了，等了两天")
    wait_until(lambda: survey_of(stack.database_url, ticket_id)[1] is not None,
               "the comment was not recorded", ANSWER_MS)

    # the dashboard counts it at once; its figure drills down to the ticket
    page.reload()
    value, rated_after = figure(page, "csat")
    assert rated_after == rated_before + 1, (rated_before, rated_after, value)
    save(page, "reports-dashboard.png")
    page.locator(".figure[data-key='csat'] .figure-value a").click()
    expect(page.locator("h1")).to_contain_text("已回复的评价", timeout=STEP_MS)
    row = page.locator("table.drill tr", has=page.locator(f"a:text-is('{number}')"))
    expect(row).to_contain_text("回复太慢了", timeout=STEP_MS)
    page.goto(f"{desk_web.url}/reports/tickets?metric=csat_low")
    expect(page.locator("table.drill")).to_contain_text(number, timeout=STEP_MS)
    save(page, "reports-drill.png")

    # the CSV of that list: a byte-order mark, the columns, the rating, no phone
    with page.expect_download(timeout=STEP_MS) as download:
        page.locator("a.export").first.click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:20]
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["number", "customer_segment", "channel", "category"], rows[0]
    mine = next(dict(zip(rows[0], r)) for r in rows[1:] if r[0] == number)
    assert (mine["csat"], mine["comment"]) == ("2", "回复太慢了，等了两天"), mine
    phone = customer_phone(stack.env, customer_id)
    assert phone not in raw.decode("utf-8-sig") and not PHONE_LIKE.search(raw.decode()), phone

    page.locator(f"table.drill a:text-is('{number}')").click()
    expect(page.locator("#ticket-head")).to_contain_text(number, timeout=STEP_MS)
    report(capsys, f"rating 2 on {number}: on the dashboard (n {rated_before} → {rated_after}), "
                   f"in the low-score list and in the CSV")


# --- the admin: an SLA target changed, and the audit log shows it ---------------------------
@screenshots_on_failure
def test_an_admin_changes_an_sla_policy_and_the_audit_log_shows_it(
        *, page: Page, desk_web: DeskWebProcess, capsys: pytest.CaptureFixture[str]) -> None:
    sign_in(page, desk_web, "admin", "/admin/sla")
    entry = page.locator(".sla-entry[data-priority='high'][data-segment='regular']")
    entry.locator("input[name=first_response_minutes]").fill("300")
    entry.locator("form.sla-row button[type=submit]").click()
    # the swapped-in page marks the row as the shop's own (the typed value shows at once,
    # so it says nothing about the save)
    expect(entry.locator(".badge.warn")).to_be_visible(timeout=STEP_MS)
    expect(entry.locator("input[name=first_response_minutes]")).to_have_value("300")
    page.reload()
    expect(page.locator(".sla-entry[data-priority='high'][data-segment='regular'] "
                        "input[name=first_response_minutes]")).to_have_value("300")
    save(page, "admin-sla.png")
    page.goto(f"{desk_web.url}/admin/audit?action=admin.sla_policy")
    row = page.locator("tr[data-action='admin.sla_policy_changed']").first
    expect(row).to_contain_text("300", timeout=STEP_MS)
    expect(row).to_contain_text("系统管理员")
    save(page, "admin-audit.png")
    report(capsys, "SLA high/regular first response → 300 min, on the audit page")

    # a manager may read reports but not change settings
    page.context.clear_cookies()
    sign_in(page, desk_web, "manager", "/reports")
    assert page.request.get(f"{desk_web.url}/admin/sla").status == 403
    # the same screens in English, for a manager who chose English (a manager has no queue
    # page with the language buttons: the setting's API, as the buttons post it)
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    chosen = page.request.post(f"{desk_web.url}/api/v1/me/language", data={"language": "en"},
                               headers={"X-CSRF-Token": csrf})
    assert chosen.ok, chosen.text()
    page.goto(f"{desk_web.url}/reports")
    expect(page.locator("h1")).to_contain_text("Service reports", timeout=STEP_MS)
    save(page, "reports-dashboard-en.png")
