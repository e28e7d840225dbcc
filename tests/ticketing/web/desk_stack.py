"""The desk web (``python -m ticketing.web``) as `make run` starts it, next to the real gateway and
assistant of the browser tests (tests/bot/gateway_harness.py, tests/assistant/live.py), over the
same SQLite demo shop; and the few database reads and writes the desk's browser test needs.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Page

from bot.rasa_config import ROOT
from tests.assistant.live import LiveAssistant, free_port
from tests.bot.browser import ARTIFACTS

DEMO_PASSWORD = "kefu-demo"  # every demo agent's (README)

F = TypeVar("F", bound=Callable[..., None])


class DeskWebProcess:
    """``python -m ticketing.web`` on a free port with the assistant's KEFU_* environment (same
    var dir, database and PII key); no Redis, so its live streams poll the database."""

    def __init__(self, live: LiveAssistant, *, name: str = "desk-web") -> None:
        self.port = free_port()
        self.env = dict(live.env, KEFU_DESK_HOST="127.0.0.1", KEFU_DESK_PORT=str(self.port),
                        PYTHONPATH=str(ROOT))
        self.log_path = live.var / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DeskWebProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "ticketing.web"], cwd=ROOT,
                                     env=self.env, stdout=self.log_path.open("ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"desk web exited:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"desk web did not come up:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


def screenshots_on_failure(test: F) -> F:
    """Like tests/bot/browser.py's ``screenshot_on_failure``, for every page the test was given:
    tests/artifacts/<test>-<fixture>.png."""
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            test(*args, **kwargs)
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            for name, value in kwargs.items():
                if isinstance(value, Page) and not value.is_closed():
                    try:
                        value.screenshot(path=str(ARTIFACTS / f"{test.__name__}-{name}.png"),
                                         full_page=True)
                    except Exception:  # noqa: BLE001 - the test's own failure matters more
                        pass
            raise
    return wrapper  # type: ignore[return-value]


def _factory(database_url: str):
    from ticketing.core.db import make_engine, make_session_factory

    engine = make_engine(database_url)
    return engine, make_session_factory(engine)


def fresh_customers(database_url: str, count: int) -> list[tuple[int, str]]:
    """Demo customers no other test uses: Chinese-speaking, with a phone and orders (so the
    widget signs them in with something to show), not VIP, and without any ticket (so "转人工"
    opens a new one rather than joining a live one); the highest ids first, away from the other
    tests' low ones (``demo_customer`` nth 0 and 1)."""
    from sqlalchemy import func, select

    from ticketing.core.models import Customer, Order, Segment, Ticket

    engine, factory = _factory(database_url)
    try:
        with factory() as session:
            rows = session.execute(
                select(Customer.id, Customer.name).join(Order, Order.customer_id == Customer.id)
                .where(Customer.phone_enc.is_not(None), Customer.segment != Segment.VIP,
                       Customer.language == "zh",
                       ~select(Ticket.id).where(Ticket.customer_id == Customer.id).exists())
                .group_by(Customer.id, Customer.name).having(func.count(Order.id) >= 1)
                .order_by(Customer.id.desc()).limit(count)).all()
    finally:
        engine.dispose()
    found = [(int(i), str(n)) for i, n in rows]
    assert len(found) == count, f"the demo shop has only {len(found)} customers without tickets"
    return found


def agent_name(database_url: str, login: str) -> str:
    from sqlalchemy import select

    from ticketing.core.models import Agent

    engine, factory = _factory(database_url)
    try:
        with factory() as session:
            return session.scalars(select(Agent.display_name).where(Agent.login == login)).one()
    finally:
        engine.dispose()


def open_ticket(database_url: str, *, customer_id: int, text: str) -> tuple[int, str]:
    """A new, unclaimed L1 widget ticket, opened through the desk services: (id, number)."""
    from ticketing.desk import tickets

    engine, factory = _factory(database_url)
    try:
        with factory.begin() as session:
            ticket = tickets.create_ticket(
                session, customer_id=customer_id, subject="转人工", channel="widget",
                language="zh", conversation_id=f"widget:c-{customer_id}",
                transcript=[{"author_type": "customer", "body": text}], text=text)
            return ticket.id, ticket.number
    finally:
        engine.dispose()


def ticket_facts(database_url: str, ticket_id: int) -> dict[str, Any]:
    """State, owner's login and the history's kinds, read fresh."""
    from sqlalchemy import select

    from ticketing.core.models import Agent, Ticket, TicketEvent

    engine, factory = _factory(database_url)
    try:
        with factory() as session:
            ticket = session.get(Ticket, ticket_id)
            owner = session.get(Agent, ticket.owner_id) if ticket.owner_id else None
            kinds = list(session.scalars(select(TicketEvent.kind).where(
                TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))
            return {"number": ticket.number, "state": str(getattr(ticket.state, "value",
                                                                    ticket.state)),
                    "owner": owner.login if owner else None, "events": kinds,
                    "created_at": ticket.created_at}
    finally:
        engine.dispose()


# What a desk page received live and fetched because of it, for the failure message of a live
# update that did not come (an init script: the desk's CSP does not apply to it).
RECORDER = """
(() => {
  const log = window.__kefuLog = [];
  const t0 = Date.now();
  const add = (what) => log.push(String(Date.now() - t0).padStart(6) + "ms " + what);
  const on = (name, describe) => document.addEventListener(name, (e) => {
    try { add(describe(e)); } catch (err) { add(name + " ?"); }
  }, true);
  on("kefu:event", (e) => "live  " + e.detail.source + " " + e.detail.kind + " ticket "
     + e.detail.ticket_id);
  on("htmx:beforeRequest", (e) => "fetch " + e.detail.requestConfig.verb + " "
     + e.detail.requestConfig.path);
  on("htmx:afterRequest", (e) => "done  " + e.detail.xhr.status + " "
     + e.detail.requestConfig.path);
  on("htmx:afterSwap", (e) => "swap  #" + e.detail.target.id);
})();
"""


def record_live(page: Page) -> None:
    """From the next navigation on, keep what :func:`live_log` reports."""
    page.add_init_script(RECORDER)


def live_log(page: Page) -> str:
    try:
        lines = page.evaluate("(window.__kefuLog || []).slice(-40)")
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure
        return f"(no live log: {exc})"
    return "\n".join(lines) or "(nothing received live)"


def solve_ticket(database_url: str, *, ticket_id: int, login: str, reply: str,
                 resolution: str) -> None:
    """Claim, answer and solve a ticket through the desk services as ``login`` (the survey goes
    out to the customer's chat)."""
    from sqlalchemy import select

    from ticketing.core.models import Agent
    from ticketing.desk import ownership, tickets

    engine, factory = _factory(database_url)
    try:
        with factory.begin() as session:
            agent_id = session.scalars(select(Agent.id).where(Agent.login == login)).one()
            ownership.claim(session, ticket_id=ticket_id, agent_id=agent_id)
            tickets.agent_reply(session, ticket_id=ticket_id, agent_id=agent_id, body=reply)
            tickets.solve(session, ticket_id=ticket_id, agent_id=agent_id, resolution=resolution)
    finally:
        engine.dispose()


def survey_of(database_url: str, ticket_id: int) -> tuple[int | None, str | None]:
    """The ticket's survey score and comment, read fresh."""
    from ticketing.desk import csat

    engine, factory = _factory(database_url)
    try:
        with factory() as session:
            survey = csat.survey_for_ticket(session, ticket_id=ticket_id)
            return (survey.score, survey.comment) if survey is not None else (None, None)
    finally:
        engine.dispose()


def customer_phone(env: dict[str, str], customer_id: int) -> str:
    """The customer's phone in clear (to prove an export does not contain it); ``env`` is the
    stack's environment (its PII key)."""
    from ticketing.core.models import Customer
    from ticketing.core.pii import PiiCipher
    from ticketing.core.settings import load_settings

    settings = load_settings(env)
    key = settings.pii_key
    engine, factory = _factory(settings.database_url)
    try:
        with factory() as session:
            customer = session.get(Customer, customer_id)
            return PiiCipher(key).decrypt(customer.phone_enc, field="phone")
    finally:
        engine.dispose()
