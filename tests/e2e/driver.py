"""The one driver of the end-to-end scenarios (``tests/e2e/scenarios/*.yml``).

A scenario is data: who is talking (a fresh signed-in customer with some orders, or an
anonymous visitor), then turns. A turn is something the customer *says*, a button they
*click* (the newest button whose title contains the words, or whose payload is them), or
something an agent does at the *desk* (``solve``, ``reply``); each turn's ``expect`` checks
the bot's replies to that turn and, where it matters, the database. Everything runs through
the real gateway's widget WebSocket (docs/gateway.md), Rasa and the action server.

Why data and one driver, not 60 test functions: the flows differ only in what is said and
what must come back, so reading the YAML is reading the conversations, and every scenario
gets the same checks for free: each reply and button title in the language the customer
writes in (decided by the project's own detector, ``ticketing.core.i18n.language_of_text``;
a message without words, such as a button or an order number, keeps the language), and a
readable transcript in every failure message.

Why the ``handled`` frame: the gateway sends it after every answer to a message was delivered
(docs/gateway.md), so a turn ends exactly then; no sleeping, only deadlines.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import widget_token
from ticketing.core.i18n import language_of_text
from tests.bot.gateway_harness import Desk, WidgetClient
from tests.e2e.shop import OrderRef, OrderSpec, Shop, Visitor

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
WIDGET_SECRET = "test-secret"  # GatewayProcess signs with this
TURN_TIMEOUT = 30.0  # one answer from Rasa; the bench's p95 at low load is well under 1 s
DESK_TIMEOUT = 30.0  # an agent's action reaches the widget through the outbox (0.2 s polls)
_PLACEHOLDER = re.compile(r"\{(\w+)(?:\.(\w+))?\}")


# --- the data ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """What one turn must produce. Text checks read the turn's replies joined by newlines;
    strings may name the scenario's orders (``{a}``, ``{a.tail}``, ``{a.total}``), another
    customer's order (``{foreign}``) and the conversation's latest ticket (``{ticket}``)."""

    has: tuple[str, ...] = ()  # every one appears
    any: tuple[str, ...] = ()  # at least one appears
    lacks: tuple[str, ...] = ()  # none appears
    first: str | None = None  # regex the first reply starts with (what is said first)
    re: tuple[str, ...] = ()  # regexes found somewhere
    count: int | None = None  # number of replies
    kinds: tuple[str, ...] = ()  # the replies' kinds, in order
    receipts: int | None = None  # replies of kind ticket_receipt
    buttons: tuple[str, ...] = ()  # button titles offered (exact)
    titled: tuple[str, ...] = ()  # words some offered button's title contains
    payloads: tuple[str, ...] = ()  # payload prefixes offered
    no_buttons: bool = False
    lang: bool = True  # check every reply and button title is in the customer's language
    # the database
    handoff: bool | None = None  # a person holds the conversation now
    ticket: dict[str, Any] | None = None  # the latest ticket: category, priority, order, state
    tickets: int | None = None  # tickets of this conversation
    refund: dict[str, Any] | None = None  # the order's latest refund: state, amount, reason, kind
    refunds: dict[str, int] | None = None  # order key -> number of refund requests
    orders: dict[str, str] | None = None  # order key -> state
    address: dict[str, str] | None = None  # {order: key, is: the new address, stored encrypted}
    restock: tuple[str, ...] | None = None  # products waited for (Chinese names), exactly
    survey: dict[str, Any] | None = None  # the latest ticket's survey: score, comment


@dataclass(frozen=True)
class Turn:
    say: str | None = None
    click: str | None = None
    desk: str | None = None  # solve | reply
    text: str = ""  # the agent's words for desk turns
    lang: str | None = None  # the reply language, when the detector's reading is not wanted
    expect: Expect = field(default_factory=Expect)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.say, self.click, self.desk)) != 1:
            raise ValueError(f"a turn says, clicks or is a desk action: {self}")


@dataclass(frozen=True)
class Scenario:
    id: str
    lang: str  # zh | en | mixed: what the scenario counts as
    customer: str  # the customer's language (the widget's setting)
    turns: tuple[Turn, ...]
    anonymous: bool = False
    segment: str = "regular"
    orders: dict[str, OrderSpec] = field(default_factory=dict)
    xfail: str | None = None  # the product is wrong: strict xfail with this reason
    flaky: str | None = None  # work in progress elsewhere: non-strict xfail with this reason

    def param(self) -> Any:
        marks = []
        if self.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=self.xfail))
        if self.flaky:
            marks.append(pytest.mark.xfail(strict=False, reason=self.flaky))
        return pytest.param(self, id=self.id, marks=marks)


def _build(cls: type, data: dict[str, Any]) -> Any:
    """A frozen dataclass from YAML: lists become tuples, unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)} in {data}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def load_scenarios(directory: Path = SCENARIOS_DIR) -> list[Scenario]:
    scenarios = []
    for path in sorted(directory.glob("*.yml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")):
            turns = tuple(_build(Turn, {**t, "expect": _build(Expect, t.get("expect") or {})})
                          for t in raw.pop("turns"))
            orders = {k: _build(OrderSpec, v) for k, v in (raw.pop("orders", None) or {}).items()}
            scenarios.append(_build(Scenario, {**raw, "turns": turns, "orders": orders}))
    ids = [s.id for s in scenarios]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate scenario ids: {sorted(duplicates)}")
    return scenarios


# --- running one ---------------------------------------------------------------------------------
class Conversation:
    """One scenario's widget tab, its transcript, and the checks of each turn."""

    def __init__(self, scenario: Scenario, *, ws_url: str, shop: Shop, desk: Desk,
                 foreign: OrderRef) -> None:
        self.scenario, self.shop, self.desk = scenario, shop, desk
        self.visitor: Visitor = shop.visitor(language=scenario.customer,
                                             anonymous=scenario.anonymous,
                                             segment=scenario.segment, orders=scenario.orders)
        token = (widget_token.sign(self.visitor.customer_id, secret=WIDGET_SECRET)
                 if self.visitor.customer_id is not None else None)
        self.client = WidgetClient(ws_url, token=token, language=scenario.customer,
                                   visitor=f"v-{uuid.uuid4()}")
        self.names: dict[str, Any] = {**self.visitor.orders, "foreign": foreign}
        self.language = scenario.customer
        self.transcript: list[str] = []
        self.conversation = ""

    async def run(self) -> None:
        welcome = await self.client.connect()
        self.conversation = welcome["conversation"]
        assert welcome["verified"] is (not self.scenario.anonymous), welcome
        try:
            for number, turn in enumerate(self.scenario.turns, start=1):
                try:
                    self._check(turn.expect, await self._act(turn))
                except AssertionError as error:  # a wrong answer, or none before the deadline
                    raise AssertionError(
                        f"scenario {self.scenario.id}, turn {number}: {error}\n"
                        f"--- transcript ({self.conversation})\n" + "\n".join(self.transcript)
                    ) from None
        finally:
            await self.client.close()
            self._keep_transcript()

    def _keep_transcript(self) -> None:
        """With ``KEFU_E2E_TRANSCRIPTS=<dir>`` every conversation is written down, passed or not
        (to read what the bot said, or to quote it in a bug report)."""
        directory = os.environ.get("KEFU_E2E_TRANSCRIPTS")
        if directory:
            path = Path(directory) / f"{self.scenario.id}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{self.conversation}\n" + "\n".join(self.transcript) + "\n",
                            encoding="utf-8")

    # -- acting -----------------------------------------------------------------------------
    async def _act(self, turn: Turn) -> list[dict[str, Any]]:
        mark = len(self.client.messages)
        if turn.desk is not None:
            await self._desk(turn)
            return self.client.messages[mark:]
        if turn.say is not None:
            text, payload = self.fill(turn.say), None
            detected = language_of_text(text)
        else:
            button = self._button(self.fill(turn.click or ""))
            text, payload, detected = button["title"], button["payload"], None
        self.language = turn.lang or detected or self.language
        self.transcript.append(f"→ {text}" + (f"   [{payload}]" if payload else ""))
        client_id = await self.client.send(text, payload=payload)
        await self.client.wait_for(lambda c: any(
            f["type"] == "handled" and f.get("client_id") == client_id for f in c.frames),
            timeout=TURN_TIMEOUT)
        replies = self.client.messages[mark:]
        self._record(replies)
        return replies

    async def _desk(self, turn: Turn) -> None:
        """An agent at the desk; the turn ends when what the customer is owed has arrived."""
        ticket_id = self.desk.handed_off_ticket(self.conversation)
        assert ticket_id is not None, "no ticket holds the conversation for the desk to act on"
        mark = len(self.client.messages)
        self.transcript.append(f"[desk: {turn.desk} {turn.text!r}]")
        if turn.desk == "solve":  # owed: the solved notice, then the survey's five stars
            self.desk.solve(ticket_id, turn.text or "已处理")
            owed = "stars"
        elif turn.desk == "reply":
            self.desk.reply(ticket_id, turn.text)
            owed = "agent_reply"
        else:
            raise ValueError(f"unknown desk action {turn.desk!r}")

        def arrived(client: WidgetClient) -> bool:
            return any(len(m["buttons"]) == 5 if owed == "stars" else m["kind"] == owed
                       for m in client.messages[mark:])

        try:
            await self.client.wait_for(arrived, timeout=DESK_TIMEOUT)
        finally:
            self._record(self.client.messages[mark:])

    def _button(self, wanted: str) -> dict[str, str]:
        """The newest offered button whose payload is ``wanted`` or whose title contains it."""
        for message in reversed(self.client.messages):
            for button in message.get("buttons") or []:
                if wanted == button["payload"] or wanted in button["title"]:
                    return button
        raise AssertionError(f"no button {wanted!r} to click")

    def _record(self, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            buttons = "".join(f"\n      [{b['title']}] {b['payload']}"
                              for b in reply.get("buttons") or [])
            self.transcript.append(f"← ({reply['kind']}) {reply['text']}{buttons}")

    # -- checking ---------------------------------------------------------------------------
    def fill(self, text: str) -> str:
        """Scenario text with its placeholders filled; unknown ``{...}`` (regexes) stay."""
        def value(match: re.Match[str]) -> str:
            name, attribute = match.group(1), match.group(2)
            if name == "ticket":
                tickets = self.shop.tickets(self.conversation)
                assert tickets, "the scenario names {ticket} but there is none"
                return tickets[-1].number
            if name not in self.names:
                return match.group(0)
            found = self.names[name]
            return str(getattr(found, attribute) if attribute else found)
        return _PLACEHOLDER.sub(value, text)

    def _check(self, expect: Expect, replies: list[dict[str, Any]]) -> None:
        said = "\n".join(r["text"] for r in replies)
        for wanted in expect.has:
            assert self.fill(wanted) in said, f"reply lacks {self.fill(wanted)!r}"
        if expect.any:
            options = [self.fill(w) for w in expect.any]
            assert any(w in said for w in options), f"reply has none of {options}"
        for unwanted in expect.lacks:
            assert self.fill(unwanted) not in said, f"reply has {self.fill(unwanted)!r}"
        if expect.first is not None:
            assert replies, "no reply"
            pattern = self.fill(expect.first)
            assert re.match(pattern, replies[0]["text"], re.S), \
                f"the first reply does not start with /{pattern}/"
        for pattern in expect.re:
            assert re.search(self.fill(pattern), said, re.S), f"reply lacks /{self.fill(pattern)}/"
        if expect.count is not None:
            assert len(replies) == expect.count, f"{len(replies)} replies, not {expect.count}"
        if expect.kinds:
            assert tuple(r["kind"] for r in replies) == expect.kinds, \
                f"reply kinds {[r['kind'] for r in replies]}, not {list(expect.kinds)}"
        if expect.receipts is not None:
            got = sum(r["kind"] == "ticket_receipt" for r in replies)
            assert got == expect.receipts, f"{got} receipts, not {expect.receipts}"
        self._check_buttons(expect, replies)
        if expect.lang:
            self._check_language(replies)
        self._check_database(expect)

    def _check_buttons(self, expect: Expect, replies: list[dict[str, Any]]) -> None:
        offered = [b for r in replies for b in r.get("buttons") or []]
        titles = [b["title"] for b in offered]
        for title in expect.buttons:
            assert self.fill(title) in titles, f"no button {self.fill(title)!r} in {titles}"
        for words in expect.titled:
            assert any(self.fill(words) in t for t in titles), \
                f"no button title with {self.fill(words)!r} in {titles}"
        for prefix in expect.payloads:
            assert any(b["payload"].startswith(self.fill(prefix)) for b in offered), \
                f"no button payload starting {self.fill(prefix)!r}"
        if expect.no_buttons:
            assert not offered, f"buttons offered: {titles}"

    def _check_language(self, replies: list[dict[str, Any]]) -> None:
        """Each reply and button title reads as the customer's language (or as neither:
        digits, stars, a ticket number); an agent's own words are theirs."""
        for reply in replies:
            if reply["kind"] == "agent_reply":
                continue
            for text in [reply["text"]] + [b["title"] for b in reply.get("buttons") or []]:
                got = language_of_text(text)
                assert got in (None, self.language), \
                    f"{text!r} reads as {got}, the customer writes {self.language}"

    def _check_database(self, expect: Expect) -> None:
        tickets = self.shop.tickets(self.conversation)
        if expect.handoff is not None:
            held = self.desk.handed_off_ticket(self.conversation) is not None
            assert held is expect.handoff, f"handed off: {held}, expected {expect.handoff}"
        if expect.tickets is not None:
            assert len(tickets) == expect.tickets, \
                f"{len(tickets)} tickets ({[t.number for t in tickets]}), not {expect.tickets}"
        if expect.ticket is not None:
            assert tickets, "no ticket was created"
            ticket = tickets[-1]
            for key, wanted in expect.ticket.items():
                if key == "order":
                    got, wanted = ticket.order_id, self.names[wanted].id
                else:
                    got = getattr(ticket, key)
                    got = getattr(got, "value", got)
                assert got == wanted, f"ticket {ticket.number} {key} is {got!r}, not {wanted!r}"
        for key, count in (expect.refunds or {}).items():
            got = len(self.shop.refunds(self.names[key].id))
            assert got == count, f"order {key} has {got} refund requests, not {count}"
        if expect.refund is not None:
            wanted = dict(expect.refund)
            refunds = self.shop.refunds(self.names[wanted.pop("order")].id)
            assert refunds, "no refund request was stored"
            for key, value in wanted.items():
                got = getattr(refunds[-1], {"amount": "amount_cents"}.get(key, key))
                got = getattr(got, "value", got)
                assert got == value, f"refund {key} is {got!r}, not {value!r}"
        for key, state in (expect.orders or {}).items():
            got = self.shop.order(self.names[key].id)[0].value
            assert got == state, f"order {key} is {got}, not {state}"
        if expect.address is not None:
            _state, stored, clear = self.shop.order(self.names[expect.address["order"]].id)
            assert clear == expect.address["is"], f"the order's address is {clear!r}"
            assert stored is not None and expect.address["is"].encode() not in stored, \
                "the address is stored in clear"
        if expect.restock is not None:
            assert self.visitor.customer_id is not None, "only a customer can wait for stock"
            got = sorted(self.shop.restock_wishes(self.visitor.customer_id))
            assert got == sorted(expect.restock), f"restock wishes {got}"
        if expect.survey is not None:
            assert tickets, "no ticket, so no survey"
            got = self.shop.survey(tickets[-1].id)
            assert got == dict(expect.survey), f"survey {got}, not {expect.survey}"
