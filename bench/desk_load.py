"""Desk load: agents working a big PostgreSQL desk, and a customer's message reaching their page.

Seeds its own PostgreSQL database (``kefu_bench_desk`` unless ``--database-url``, whose name
must contain "bench"; created when missing, migrated with ``ticketing.core.migrate.upgrade``)
with the desk's teams, ~60 agents (one password hash), ~20,000 customers and 100,000 open
tickets (new / open / waiting on the customer, every category, priority and tier, owners in
the teams that serve them) with their SLA timers, events and a few messages each, by COPY.
The seed is reused (after a VACUUM ANALYZE) while the database holds one of the same size;
``--reseed`` or another size drops the schema and seeds again. A reused seed carries the
claims and replies of earlier runs (a few hundred tickets per run).

Then, once per mode (``--modes poll redis``: the desk's live updates by database polling, then
by Redis pub/sub), it starts on free 127.0.0.1 ports the desk (``python -m ticketing.web``) and
the gateway (``python -m bot``; no Rasa needed: a handed-off conversation's messages go
straight to its ticket) over that database, with ``KEFU_REDIS_URL`` only in the redis mode,
and measures:

- **pages and actions**: N agents (``--agents``), each an ``httpx.AsyncClient`` signed in through
  ``POST /api/v1/session`` (cookie + CSRF token) with the desk's live stream open as a browser
  page has (``GET /events``; ``--no-agent-streams`` leaves them out), loop without think time
  for ``--seconds``: the queue page ``GET /`` (HTML), ``GET /api/v1/queues/mine``, their
  team's unclaimed tickets ``GET /api/v1/queues/team?limit=20``, one of those tickets' page
  ``GET /tickets/{id}`` (HTML), ``POST …/claim`` and ``POST …/reply`` (on the claimed ticket,
  else on one of theirs). A lost race is not an error: a 409 (somebody was first) or a 404
  (another team's supervisor took it, so it is out of sight) counts as a lost claim, a 404 of
  the page as "gone". Per page and action: count, p50, p95, errors; requests/s and actions/s.
- **live latency**: a customer whose widget conversation is handed off to a ticket owned by
  one more agent (``ticketing.desk.handoffs.open_for_conversation``, then a claim), signed in
  to the widget with a ``bot.widget_token`` of the gateway's secret, sends ``--messages``
  messages over the widget WebSocket; each is timed from the send until its ``message`` event
  arrives on that agent's ``GET /events`` stream. Once with the desk idle, once during the
  agents' load; also the gateway's part (send → its ``handled`` frame: stored and appended
  to the ticket).

Prints both modes side by side (medians and p95; timings are never asserted), then the
time of the queue queries at this size (``--explain`` prints their EXPLAIN ANALYZE plans).
Everything runs on 127.0.0.1, every loop is bounded by count and time, and the child
processes are stopped on exit. The redis mode leaves the SLA timer index key
(``kefu:sla:due``) of the seeded timers it touched in the Redis database of ``--redis-url``.

    .venv/bin/python bench/desk_load.py [--tickets 100000] [--agents 50] [--seconds 60]
        [--modes poll redis] [--messages 40] [--database-url URL] [--redis-url URL]
        [--reseed] [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import Engine, event, func, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402
from bench_db import check_database_url, ensure_database  # noqa: E402
from turn_latency import free_port, start, stop_all, summary_of  # noqa: E402

from bot import widget_token  # noqa: E402
from bot.assistant import wait_until_up  # noqa: E402
from ticketing.core import audit, migrate, passwords  # noqa: E402
from ticketing.core.clock import utcnow  # noqa: E402
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.models import Agent, AuditLog, Category, Customer, Segment  # noqa: E402
from ticketing.core.pii import PiiCipher  # noqa: E402
from ticketing.desk import handoffs, ownership  # noqa: E402
from ticketing.desk.tickets import ticket_number  # noqa: E402
from ticketing.shop import customers as customer_service  # noqa: E402
from ticketing.web.queries import queues  # noqa: E402

BENCH = ROOT / "var" / "bench" / "desk"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/kefu_bench_desk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SEED_MARK = "bench.desk_seed"  # the audit line that describes the seed in the database
SEED_VERSION = 1
PASSWORD = "kefu-bench"  # the seeded agents' password (a benchmark database only)
PII_KEY = base64.b64encode(hashlib.sha256(b"kefu bench desk pii").digest()).decode()
WIDGET_SECRET = "kefu-bench-desk-widget-secret"
LIVE_LOGIN = "bench.live"
MODES = ("poll", "redis")
REQUEST_TIMEOUT = 60.0
EVENT_TIMEOUT = 15.0  # a live event not seen by then counts as lost

# --- the seed ------------------------------------------------------------------------------------
TEAMS = (  # code, name zh, name en, tier, categories (as in the demo shop)
    ("frontline", "一线客服", "Frontline service", 1, ["*"]),
    ("after_sales", "售后组", "After-sales", 2, ["refund", "quality"]),
    ("logistics", "物流组", "Logistics", 2, ["logistics"]),
    ("quality", "品控组", "Quality", 2, ["quality"]),
    ("payments", "支付组", "Payments", 2, ["payment", "account"]),
    ("cs_supervisor", "客服主管", "CS supervisors", 2, ["order", "product", "other"]),
    ("operations", "运营部", "Operations", 3, ["*"]),
)
ROSTER = (  # team, role, how many: 56 who work tickets, a manager and an admin
    ("frontline", "agent", 28), ("frontline", "supervisor", 2), ("logistics", "agent", 6),
    ("after_sales", "agent", 6), ("quality", "agent", 3), ("payments", "agent", 4),
    ("cs_supervisor", "supervisor", 3), ("operations", "agent", 4),
    ("operations", "manager", 1), ("operations", "admin", 1),
)
TIER2_TEAM = {"logistics": "logistics", "refund": "after_sales", "quality": "quality",
              "payment": "payments", "account": "payments", "order": "cs_supervisor",
              "product": "cs_supervisor", "other": "cs_supervisor"}
CATEGORIES = {"logistics": 30, "refund": 15, "order": 15, "quality": 12, "product": 10,
              "payment": 8, "other": 6, "account": 4}
PRIORITIES = {"low": 15, "normal": 55, "high": 22, "urgent": 8}
HOURS = {"low": (48, 120), "normal": (24, 72), "high": (8, 48), "urgent": (2, 24)}  # sla._HOURS
STATES = {"new": 45, "open": 38, "waiting_customer": 17}
TIERS = {1: 80, 2: 17, 3: 3}
CHANNELS = {"widget": 55, "telegram": 35, "desk": 10}
SUBJECTS = {
    "logistics": ("快递三天没更新了", "物流显示已签收但没收到", "Parcel has not moved for days"),
    "refund": ("申请退款一直没到账", "退货退款进度", "Refund not received yet"),
    "order": ("订单地址想修改", "订单能不能合并发货", "Change the delivery address"),
    "quality": ("收到的商品有破损", "充电宝充不进电", "Item arrived damaged"),
    "product": ("这款耳机支持降噪吗", "尺码怎么选", "Is this charger compatible"),
    "payment": ("付款扣了两次钱", "支付失败但扣款了", "Charged twice"),
    "other": ("发票怎么开", "想投诉一下服务", "How do I get an invoice"),
    "account": ("账号登录不上", "手机号换了怎么改", "Cannot sign in to my account"),
}
SURNAMES = "李王张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀英", "霞", "平")
EN_NAMES = ("Alex Chen", "Maria Lopez", "Tom Baker", "Priya Nair", "Sam Lee", "Emma Wang")
D = timedelta(days=1)


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass(frozen=True)
class SeedAgent:
    id: int
    login: str
    role: str
    team: str


def roster() -> list[SeedAgent]:
    """The seeded agents, ids from 1; the live-latency agent (frontline) is the last."""
    found, n = [], 0
    for team, role, count in ROSTER:
        for k in range(1, count + 1):
            n += 1
            found.append(SeedAgent(n, f"bench.{team}.{role}.{k:02d}", role, team))
    found.append(SeedAgent(n + 1, LIVE_LOGIN, "agent", "frontline"))
    return found


def load_agents(agents: list[SeedAgent], count: int) -> list[SeedAgent]:
    """``count`` workers, teams interleaved (a small run still covers several teams)."""
    by_team: dict[str, list[SeedAgent]] = defaultdict(list)
    for a in agents:
        if a.role in ("agent", "supervisor") and a.login != LIVE_LOGIN:
            by_team[a.team].append(a)
    order: list[SeedAgent] = []
    while any(by_team.values()):
        for team in [t[0] for t in TEAMS]:
            if by_team[team]:
                order.append(by_team[team].pop(0))
    if count > len(order):
        sys.exit(f"--agents {count}: the seed has {len(order)} agents who work tickets")
    return order[:count]


class Seeder:
    """Row generators for COPY; ids are assigned here (the schema is fresh)."""

    def __init__(self, *, tickets: int, customers: int, now: datetime, cipher: PiiCipher) -> None:
        self.n_tickets, self.n_customers, self.now, self.cipher = tickets, customers, now, cipher
        self.rng = random.Random(20261201)
        self.agents = roster()
        self.team_ids = {code: i for i, (code, *_rest) in enumerate(TEAMS, start=1)}
        self.workers: dict[str, list[SeedAgent]] = defaultdict(list)
        for a in self.agents:
            if a.role in ("agent", "supervisor"):
                self.workers[a.team].append(a)
        self.segments: list[str] = []
        self.languages: list[str] = []
        self.message_id = self.event_id = self.timer_id = 0
        self.counts: Counter[str] = Counter()

    # teams, agents, customers
    def team_rows(self) -> Iterator[tuple]:
        for i, (code, zh, en, tier, categories) in enumerate(TEAMS, start=1):
            yield i, code, zh, en, tier, json.dumps(categories)

    def agent_rows(self, password_hash: str) -> Iterator[tuple]:
        rng = random.Random(7)
        for a in self.agents:
            given = rng.choice(GIVEN)
            yield (a.id, a.login, f"{rng.choice(SURNAMES)}{given}{a.id:02d}", f"小{given}", a.role,
                   self.team_ids[a.team], "online", 20, password_hash,
                   "en" if a.id % 5 == 0 else "zh", 0, None, self.now - 200 * D)

    def customer_rows(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n_customers + 1):
            language = "en" if rng.random() < 0.15 else "zh"
            segment = "vip" if i % 6 == 0 else "potential" if i % 7 == 3 else "regular"
            self.segments.append(segment)
            self.languages.append(language)
            name = rng.choice(EN_NAMES) if language == "en" else \
                rng.choice(SURNAMES) + rng.choice(GIVEN)
            phone = f"13{i:09d}"
            address = f"上海市浦东新区世纪大道{i % 999 + 1}号{i % 30 + 1}栋"
            yield (i, name, language, segment, self.cipher.encrypt(phone, field="phone"),
                   self.cipher.lookup_hash(phone), self.cipher.encrypt(address, field="address"),
                   self.now - rng.randint(30, 700) * D)

    # tickets and everything hanging off them
    def _owner(self, tier: int, category: str) -> SeedAgent:
        team = "frontline" if tier == 1 else "operations" if tier == 3 else TIER2_TEAM[category]
        if team == "quality" and self.rng.random() < 0.5:
            team = "after_sales"
        return self.rng.choice(self.workers[team])

    def ticket_rows(self) -> Iterator[tuple[tuple, list[tuple], list[tuple], list[tuple]]]:
        """(ticket, messages, events, timers) per ticket."""
        rng, now = self.rng, self.now
        for tid in range(1, self.n_tickets + 1):
            customer = rng.randrange(1, self.n_customers + 1)
            segment, language = self.segments[customer - 1], self.languages[customer - 1]
            category = _weighted(rng, CATEGORIES)
            priority = _weighted(rng, PRIORITIES)
            tier = _weighted(rng, TIERS)
            state = _weighted(rng, STATES)
            channel = _weighted(rng, CHANNELS)
            created = now - timedelta(seconds=rng.uniform(120, 5 * 86400))
            subjects = SUBJECTS[category]
            subject = subjects[2] if language == "en" else subjects[rng.randrange(2)]
            owner = self._owner(tier, category) if state != "new" else None
            claimed = created + timedelta(minutes=rng.uniform(1, 90)) if owner else None
            claimed = min(claimed, now) if claimed else None
            replied = owner is not None and (state == "waiting_customer" or rng.random() < 0.5)
            first_response = min(claimed + timedelta(minutes=rng.uniform(1, 30)), now) \
                if replied and claimed else None
            ticket = (tid, ticket_number(tid, created), customer, channel, category, priority,
                      tier, state, subject, language,
                      self.team_ids[owner.team] if owner else None, owner.id if owner else None,
                      "[]", created, claimed, first_response, 0,
                      1 + (owner is not None) + (state == "waiting_customer"))
            messages = [self._message(tid, created, "customer", customer, subject + "，请尽快处理"),
                        self._message(tid, created + timedelta(seconds=5), "bot", None,
                                      "已为您转接人工客服，请稍候。")]
            events = [self._event(tid, created, "created", "bot", None, None, "new",
                                  {"category": category, "priority": priority, "tier": tier,
                                   "channel": channel, "flags": []})]
            if owner and claimed:
                events.append(self._event(tid, claimed, "claimed", "agent", owner.id, "new",
                                          "open", {"owner_id": owner.id, "source": "agent"}))
            if first_response and owner:
                messages.append(self._message(tid, first_response, "agent", owner.id,
                                              "您好，正在为您核实，请稍等。"))
            if state == "waiting_customer" and owner and first_response:
                events.append(self._event(tid, first_response, "state_changed", "agent", owner.id,
                                          "open", "waiting_customer", {}))
            timers = self._timers(tid, created, priority, segment, state, first_response)
            self.counts.update(tickets=1, messages=len(messages), events=len(events),
                               timers=len(timers))
            yield ticket, messages, events, timers

    def _message(self, tid: int, at: datetime, author: str, author_id: int | None,
                 body: str) -> tuple:
        self.message_id += 1
        return self.message_id, tid, at, author, author_id, body, False, "[]"

    def _event(self, tid: int, at: datetime, kind: str, actor: str, actor_id: int | None,
               old: str | None, new: str | None, data: dict[str, object]) -> tuple:
        self.event_id += 1
        return self.event_id, tid, at, kind, actor, actor_id, old, new, None, json.dumps(data)

    def _timers(self, tid: int, created: datetime, priority: str, segment: str, state: str,
                first_response: datetime | None) -> list[tuple]:
        factor = 0.5 if segment == "vip" else 1.0
        rows = []
        for kind, hours in (("first_response", HOURS[priority][0]),
                            ("resolution", HOURS[priority][1])):
            self.timer_id += 1
            budget = timedelta(hours=hours * factor)
            deadline, warn = created + budget, created + budget * 0.8
            if kind == "first_response" and first_response is not None:  # met
                rows.append((self.timer_id, tid, kind, 1, "done", created, deadline, warn, None,
                             None, warn if warn < first_response else None,
                             deadline if deadline < first_response else None, first_response))
            elif state == "waiting_customer":  # paused with what was left
                left = max((deadline - self.now).total_seconds(), 0.0)
                rows.append((self.timer_id, tid, kind, 1, "paused", created, deadline, warn, None,
                             left, warn if warn < self.now else None,
                             deadline if deadline < self.now else None, None))
            else:
                breached = deadline < self.now
                fire = None if breached else warn if warn > self.now else deadline
                rows.append((self.timer_id, tid, kind, 1, "active", created, deadline, warn, fire,
                             None, warn if warn < self.now else None,
                             deadline if breached else None, None))
        return rows


COLUMNS = {
    "teams": "id, code, name_zh, name_en, tier, categories",
    "agents": ("id, login, display_name, first_name, role, team_id, availability, "
               "max_open_tickets, password_hash, language, failed_logins, locked_until, "
               "created_at"),
    "customers": "id, name, language, segment, phone_enc, phone_lookup, address_enc, created_at",
    "tickets": ("id, number, customer_id, channel, category, priority, tier, state, subject, "
                "language, team_id, owner_id, flags, created_at, claimed_at, first_response_at, "
                "reopen_count, version"),
    "ticket_messages": "id, ticket_id, at, author_type, author_id, body, internal, attachments",
    "ticket_events": ("id, ticket_id, at, kind, actor_type, actor_id, from_value, to_value, "
                      "reason, data"),
    "sla_timers": ("id, ticket_id, kind, generation, status, started_at, deadline_at, warn_at, "
                   "fire_at, remaining_seconds, warned_at, breached_at, completed_at"),
}


def seed_info(factory: sessionmaker[Session]) -> dict[str, Any] | None:
    with factory() as session:
        row = session.scalar(select(AuditLog).where(AuditLog.action == SEED_MARK)
                             .order_by(AuditLog.id.desc()).limit(1))
        return dict(row.details) if row is not None else None


def reset_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def seed(engine: Engine, factory: sessionmaker[Session], *, tickets: int, customers: int,
         cipher: PiiCipher) -> dict[str, Any]:
    """COPY the whole seed in one transaction, then VACUUM ANALYZE."""
    started = time.perf_counter()
    seeder = Seeder(tickets=tickets, customers=customers, now=utcnow(), cipher=cipher)
    password_hash = passwords.hash_password(PASSWORD)  # one scrypt hash for every agent
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            def copy(table: str, rows: Any) -> None:
                with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as out:
                    for row in rows:
                        out.write_row(row)

            copy("teams", seeder.team_rows())
            copy("agents", seeder.agent_rows(password_hash))
            copy("customers", seeder.customer_rows())
            names = ("ticket_messages", "ticket_events", "sla_timers")
            with cur.copy(f"COPY tickets ({COLUMNS['tickets']}) FROM STDIN") as out:
                spill: dict[str, list[tuple]] = {n: [] for n in names}
                for ticket, messages, events, timers in seeder.ticket_rows():
                    out.write_row(ticket)
                    spill["ticket_messages"] += messages
                    spill["ticket_events"] += events
                    spill["sla_timers"] += timers
            for name in names:
                copy(name, spill[name])
                spill[name] = []
            for table in ("teams", "agents", "customers", *COLUMNS.keys() - {"teams", "agents",
                                                                             "customers"}):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        conn.commit()
    finally:
        raw.close()
    copied = time.perf_counter() - started
    vacuum(engine)
    info = {"version": SEED_VERSION, "tickets": tickets, "customers": customers,
            "agents": len(seeder.agents), "messages": seeder.counts["messages"],
            "events": seeder.counts["events"], "timers": seeder.counts["timers"],
            "copy_seconds": round(copied, 1),
            "seed_seconds": round(time.perf_counter() - started, 1)}
    with factory.begin() as session:
        audit.record(session, action=SEED_MARK, actor_type="system", details=info)
    return info


def prepare_database(url: str, *, tickets: int, customers: int, reseed: bool,
                     cipher: PiiCipher) -> tuple[dict[str, Any], bool]:
    """(seed description, seeded now): reuses a seed of the same size unless ``reseed``."""
    name = check_database_url(url, "bench/desk_load.py")
    ensure_database(url, name)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        migrate.upgrade(url)
        info = seed_info(factory)
        wanted = {"version": SEED_VERSION, "tickets": tickets, "customers": customers}
        if info is not None and not reseed and all(info.get(k) == v for k, v in wanted.items()):
            vacuum(engine)  # earlier runs' updates; a server may run without autovacuum
            return info, False
        if info is not None or reseed:
            print(f"reseeding {name} ({'--reseed' if reseed else 'another size'})")
            reset_schema(engine)
            engine.dispose()
            migrate.upgrade(url)
        elif session_has_rows(factory):
            sys.exit(f"{name} has data but no bench seed: use --reseed to replace it")
        return seed(engine, factory, tickets=tickets, customers=customers, cipher=cipher), True
    finally:
        engine.dispose()


def session_has_rows(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return bool(session.scalar(select(func.count()).select_from(Agent)))


# --- the live-latency ticket ---------------------------------------------------------------------
def open_live_ticket(factory: sessionmaker[Session], label: str) -> tuple[int, int, str]:
    """A new widget customer whose conversation is handed off to a ticket the live agent owns:
    (customer id, ticket id, ticket number)."""
    now = utcnow()
    with factory.begin() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.login == LIVE_LOGIN))
        customer = Customer(name=f"bench live {label}", language="zh", segment=Segment.REGULAR,
                            created_at=now)
        session.add(customer)
        session.flush()
        external_id = f"c-{customer.id}"
        customer_service.link_identity(session, channel="widget", external_id=external_id,
                                       customer_id=customer.id, method="bench", now=now)
        ticket = handoffs.open_for_conversation(
            session, conversation_id=customer_service.conversation_id_for("widget", external_id),
            text="我想找人工客服问一下", language="zh", category=Category.OTHER, now=now)
        ownership.claim(session, ticket_id=ticket.id, agent_id=agent_id, now=now)
        return customer.id, ticket.id, ticket.number


# --- measuring -----------------------------------------------------------------------------------
LABELS = (
    ("signin", "POST /api/v1/session (sign-in)"),
    ("queue_html", "GET / (queue page, HTML)"),
    ("queue_mine", "GET /api/v1/queues/mine"),
    ("queue_team", "GET /api/v1/queues/team?limit=20"),
    ("ticket_html", "GET /tickets/{id} (HTML)"),
    ("claim", "POST /api/v1/tickets/{id}/claim"),
    ("reply", "POST /api/v1/tickets/{id}/reply"),
)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    claims_lost: int = 0  # 409: somebody was first; 404: another team's, no longer visible
    gone: int = 0  # a listed ticket's page was a 404: claimed meanwhile by another team
    no_ticket: int = 0
    stream_events: int = 0

    async def timed(self, key: str, request: Any, ok: tuple[int, ...] = (200,)
                    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self.latencies[key].append(time.perf_counter() - started)
            self.errors[key][type(exc).__name__] += 1
            return None
        self.latencies[key].append(time.perf_counter() - started)
        if response.status_code not in ok:
            self.errors[key][str(response.status_code)] += 1
            return None
        return response


class DeskAgent:
    """One signed-in agent: its own client (cookie jar) and CSRF token."""

    def __init__(self, base: str, login: str) -> None:
        self.login = login
        self.client = httpx.AsyncClient(
            base_url=base, timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0),
            limits=httpx.Limits(max_connections=4), follow_redirects=False)
        self.csrf = ""

    async def sign_in(self, stats: Stats) -> bool:
        response = await stats.timed("signin", self.client.post(
            "/api/v1/session", json={"login": self.login, "password": PASSWORD}))
        if response is None:
            return False
        self.csrf = response.json()["csrf_token"]
        return True

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.client.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf})

    async def close(self) -> None:
        await self.client.aclose()


async def read_stream(agent: DeskAgent, ready: asyncio.Event,
                      on_event: Any = None) -> None:
    """Read ``GET /events`` like a page does until cancelled; ``on_event(name, data, at)``."""
    timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=10.0, read=60.0)
    async with agent.client.stream("GET", "/events", timeout=timeout,
                                   headers={"Accept": "text/event-stream"}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/events answered {response.status_code}")
        name, data = "message", []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    if name == "ready":
                        ready.set()
                    elif on_event is not None:
                        on_event(name, "\n".join(data), time.perf_counter())
                name, data = "message", []
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())


async def agent_loop(agent: DeskAgent, stats: Stats, *, until: float, max_rounds: int,
                     rng: random.Random) -> int:
    """Queue page, my queue, team queue, a ticket page, claim, reply; no think time."""
    rounds = 0
    while rounds < max_rounds and time.monotonic() < until:
        rounds += 1
        await stats.timed("queue_html", agent.client.get("/"))
        mine_response = await stats.timed("queue_mine", agent.client.get("/api/v1/queues/mine"))
        mine = [r["id"] for r in mine_response.json()["rows"]] if mine_response else []
        team_response = await stats.timed("queue_team", agent.client.get(
            "/api/v1/queues/team", params={"limit": 20}))
        unclaimed = [r["id"] for r in team_response.json()["rows"]] if team_response else []
        if time.monotonic() >= until:
            break
        target = rng.choice(unclaimed) if unclaimed else rng.choice(mine) if mine else None
        if target is None:
            stats.no_ticket += 1
            continue
        page = await stats.timed("ticket_html", agent.client.get(f"/tickets/{target}"),
                                 ok=(200, 404))
        reply_to = target if not unclaimed else None
        if page is not None and page.status_code == 404:  # claimed meanwhile by another team,
            stats.gone += 1                               # so no longer visible: a race
            reply_to = rng.choice(mine) if mine else None
        elif unclaimed:
            claimed = await stats.timed("claim", agent.post(f"/api/v1/tickets/{target}/claim"),
                                        ok=(200, 404, 409))
            if claimed is not None and claimed.status_code != 200:
                stats.claims_lost += 1
                reply_to = rng.choice(mine) if mine else None
            elif claimed is not None:
                reply_to = target
        if reply_to is not None:
            await stats.timed("reply", agent.post(
                f"/api/v1/tickets/{reply_to}/reply",
                {"body": f"您好，已为您核实处理中，请稍候。(bench {rounds})"}))
    return rounds


@dataclass
class LiveProbe:
    """A customer in the widget and the owning agent's live stream."""

    gateway: str
    customer_id: int
    prefix: str = field(default_factory=lambda: f"probe{uuid.uuid4().hex[:8]}")
    arrivals: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)

    def on_event(self, name: str, data: str, at: float) -> None:
        if name != "message":
            return
        found = re.search(re.escape(self.prefix) + r"-[a-z]+-\d+", data)
        if found and found.group(0) not in self.arrivals:
            self.arrivals[found.group(0)] = at
            if found.group(0) in self.waiting:
                self.waiting[found.group(0)].set()

    async def run(self, phase: str, count: int, *, until: float | None, spacing: float,
                  rng: random.Random) -> dict[str, Any]:
        """Send up to ``count`` messages (stopping at ``until``), one at a time."""
        live, handled_after, lost = [], [], 0
        token = widget_token.sign(self.customer_id, secret=WIDGET_SECRET, ttl=3600)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{self.gateway}/ws")
            try:
                await ws.send_json({"type": "hello", "visitor": None, "token": token,
                                    "language": "zh"})
                welcome = await ws.receive_json(timeout=30)
                if welcome.get("type") != "welcome" or not welcome.get("verified"):
                    raise RuntimeError(f"widget refused the bench customer: {welcome}")
                for i in range(count):
                    if until is not None and time.monotonic() >= until:
                        break
                    marker = f"{self.prefix}-{phase}-{i}"
                    arrived = self.waiting[marker] = asyncio.Event()
                    client_id = f"m-{uuid.uuid4().hex[:20]}"
                    sent = time.perf_counter()
                    await ws.send_json({"type": "message", "client_id": client_id,
                                        "text": f"请问处理到哪一步了？{marker}"})
                    handled = await _handled(ws, client_id)
                    if handled is not None:
                        handled_after.append(handled - sent)
                    try:
                        await asyncio.wait_for(arrived.wait(), EVENT_TIMEOUT)
                        live.append(self.arrivals[marker] - sent)
                    except asyncio.TimeoutError:
                        lost += 1
                    await asyncio.sleep(spacing * rng.uniform(0.5, 1.5))  # off the poll's beat
            finally:
                await ws.close()
        return {"live": live, "handled": handled_after, "lost": lost}


async def _handled(ws: aiohttp.ClientWebSocketResponse, client_id: str) -> float | None:
    """When the gateway's ``handled`` frame for ``client_id`` came (None: not in time)."""
    ends = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < ends:
        try:
            frame = await ws.receive_json(timeout=max(ends - time.monotonic(), 0.01))
        except (asyncio.TimeoutError, TypeError, ValueError):
            return None
        if frame.get("type") == "handled" and frame.get("client_id") == client_id:
            return time.perf_counter()
    return None


def _p(values: list[float]) -> dict[str, float] | None:
    return summary_of(values, len(values), 1.0) if values else None


async def run_mode(mode: str, *, desk: str, gateway: str, customer_id: int,
                   agents: list[SeedAgent], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(MODES.index(mode))
    stats = Stats()
    live_agent = DeskAgent(desk, LIVE_LOGIN)
    workers = [DeskAgent(desk, a.login) for a in agents]
    tasks: list[asyncio.Task[Any]] = []
    try:
        signin = asyncio.Semaphore(8)

        async def sign_in(agent: DeskAgent) -> bool:
            async with signin:
                return await agent.sign_in(stats)

        signed = await asyncio.gather(*(sign_in(a) for a in [live_agent, *workers]))
        if not all(signed):
            raise RuntimeError(f"sign-in failed: {dict(stats.errors['signin'])}")
        probe = LiveProbe(gateway, customer_id)
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(read_stream(live_agent, ready, probe.on_event)))
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.gather(*(a.client.get("/") for a in workers))  # warm-up, not counted
        idle = await probe.run("idle", args.messages, until=None, spacing=0.4, rng=rng)

        if args.agent_streams:
            readies = [asyncio.Event() for _ in workers]

            def count_event(_name: str, _data: str, _at: float) -> None:
                stats.stream_events += 1

            tasks += [asyncio.create_task(read_stream(a, r, count_event))
                      for a, r in zip(workers, readies)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        started = time.monotonic()
        until = started + args.seconds
        spacing = max(0.2, min(1.0, (args.seconds - 2) / max(args.messages, 1)))

        async def loaded_probe() -> dict[str, Any]:
            await asyncio.sleep(min(2.0, args.seconds / 5))  # the load first
            return await probe.run("load", args.messages, until=until, spacing=spacing,
                                   rng=rng)

        results = await asyncio.gather(
            loaded_probe(),
            *(agent_loop(a, stats, until=until, max_rounds=args.max_rounds,
                         rng=random.Random(rng.random())) for a in workers))
        elapsed = time.monotonic() - started
        under_load, rounds = results[0], results[1:]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(a.close() for a in [live_agent, *workers]))

    pages = {key: {**(_p(stats.latencies[key]) or {"turns": 0}),
                   "errors": sum(stats.errors[key].values()),
                   "error_kinds": dict(stats.errors[key])} for key, _ in LABELS}
    requests = sum(len(stats.latencies[k]) for k, _ in LABELS if k != "signin")
    actions = len(stats.latencies["claim"]) + len(stats.latencies["reply"])
    return {
        "mode": mode, "seconds": round(elapsed, 1), "agents": len(workers),
        "rounds": sum(rounds), "pages": pages,
        "requests_per_s": requests / elapsed, "actions_per_s": actions / elapsed,
        "claims_won": len(stats.latencies["claim"]) - stats.claims_lost
        - sum(stats.errors["claim"].values()),
        "claims_lost": stats.claims_lost, "gone": stats.gone, "no_ticket": stats.no_ticket,
        "stream_events": stats.stream_events,
        "live_idle": {**(_p(idle["live"]) or {}), "lost": idle["lost"],
                      "handled": _p(idle["handled"])},
        "live_load": {**(_p(under_load["live"]) or {}), "lost": under_load["lost"],
                      "handled": _p(under_load["handled"])},
    }


# --- the processes -------------------------------------------------------------------------------
def child_env(database_url: str, *, desk_port: int, gateway_port: int,
              redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(
        KEFU_DATABASE_URL=database_url, KEFU_VAR_DIR=str(BENCH), KEFU_PII_KEY=PII_KEY,
        KEFU_WIDGET_SECRET=WIDGET_SECRET, KEFU_DESK_HOST="127.0.0.1",
        KEFU_DESK_PORT=str(desk_port), KEFU_GATEWAY_HOST="127.0.0.1",
        KEFU_GATEWAY_PORT=str(gateway_port),
        KEFU_RASA_URL=f"http://127.0.0.1:{free_port()}",  # never called: handed-off messages
        KEFU_RATE_LIMIT_PER_MINUTE="0", KEFU_DEMO_PAGE="off", KEFU_AUTO_ASSIGN_AFTER="off",
        PYTHONPATH=str(ROOT))
    if redis_url:
        env["KEFU_REDIS_URL"] = redis_url
    return env


def measure_mode(mode: str, args: argparse.Namespace, factory: sessionmaker[Session],
                 agents: list[SeedAgent]) -> dict[str, Any]:
    desk_port, gateway_port = free_port(), free_port()
    env = child_env(args.database_url, desk_port=desk_port, gateway_port=gateway_port,
                    redis_url=args.redis_url if mode == "redis" else None)
    procs = [start([sys.executable, "-m", "ticketing.web"], env, ROOT, BENCH / f"desk-{mode}.log"),
             start([sys.executable, "-m", "bot"], env, ROOT, BENCH / f"gateway-{mode}.log")]
    try:
        wait_until_up(f"http://127.0.0.1:{desk_port}/health", process=procs[0], timeout=60)
        wait_until_up(f"http://127.0.0.1:{gateway_port}/health", process=procs[1], timeout=60)
        customer_id, _ticket_id, number = open_live_ticket(factory, mode)
        print(f"[{mode}] desk :{desk_port}, gateway :{gateway_port}, live ticket {number}",
              flush=True)
        return asyncio.run(asyncio.wait_for(
            run_mode(mode, desk=f"http://127.0.0.1:{desk_port}",
                     gateway=f"http://127.0.0.1:{gateway_port}", customer_id=customer_id,
                     agents=agents, args=args),
            timeout=args.seconds + 6 * args.messages + 300))
    finally:
        stop_all(procs)


# --- where the time goes -------------------------------------------------------------------------
def explain_queues(engine: Engine, login: str, *, show_plans: bool) -> list[tuple[str, float]]:
    """The queue page's statements for ``login``, captured from the real query code, each
    run again under EXPLAIN ANALYZE: (what, execution ms)."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "tickets" in statement:
            captured.append((statement, parameters))

    factory = make_session_factory(engine)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with factory() as session:
            agent = session.scalar(select(Agent).where(Agent.login == login))
            assert agent is not None
            steps = []
            for what, call in (
                ("queue counts (tabs)", lambda: queues.counts(session, agent=agent)),
                ("queue 'mine' rows", lambda: queues.queue_rows(session, agent=agent,
                                                                queue=queues.MINE)),
                ("queue 'team' rows", lambda: queues.queue_rows(session, agent=agent,
                                                                queue=queues.TEAM, limit=20)),
            ):
                captured.clear()
                call()
                steps.append((what, captured[0]))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    timings = []
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for what, (statement, parameters) in steps:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = [r[0] for r in cur.fetchall()]
                ms = next(float(line.split(":")[1].split()[0]) for line in plan
                          if line.startswith("Execution Time"))
                timings.append((what, ms))
                if show_plans:
                    print(f"\n--- {what} ({login}) ---")
                    print("\n".join(plan))
        raw.rollback()
    finally:
        raw.close()
    return timings


# --- the report ----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_report(results: list[dict[str, Any]], seed: dict[str, Any], seeded_now: bool,
                 args: argparse.Namespace) -> None:
    modes = [r["mode"] for r in results]
    print(f"\ndesk load: {seed['tickets']:,} open tickets, {seed['customers']:,} customers, "
          f"{results[0]['agents']} agents, {args.seconds:.0f} s per mode; "
          f"seed {'made now' if seeded_now else 'reused'} ({seed['seed_seconds']} s to make)")
    head = f"{'page / action':<36}" + "".join(
        f" | {m + ' count':>11} {'p50 ms':>7} {'p95 ms':>7} {'err':>4}" for m in modes)
    print(head)
    print("-" * len(head))
    for key, label in LABELS:
        line = f"{label:<36}"
        for r in results:
            p = r["pages"][key]
            line += (f" | {p['turns']:>11,.0f} {fmt(p.get('p50_ms')):>7} "
                     f"{fmt(p.get('p95_ms')):>7} {p['errors']:>4}")
        print(line)
    rows = [
        ("requests/s (pages + actions)", lambda r: fmt(r["requests_per_s"], 1)),
        ("actions/s (claim + reply)", lambda r: fmt(r["actions_per_s"], 1)),
        ("claims won / lost (409, 404)", lambda r: f"{r['claims_won']} / {r['claims_lost']}"),
        ("ticket pages gone (404: raced)", lambda r: f"{r['gone']}"),
        ("live events read by agents' pages", lambda r: f"{r['stream_events']:,}"),
    ]
    for label, show in rows:
        print(f"{label:<36}" + "".join(f" | {show(r):>32}" for r in results))
    print(f"\nwidget message → event on the owner's /events ({args.messages} messages each)")
    print(f"{'':<36}" + "".join(f" | {m + ' p50 / p95 ms':>22} {'lost':>9}" for m in modes))
    for key, label in (("live_idle", "desk idle"), ("live_load", "during the agents' load")):
        line = f"{label:<36}"
        for r in results:
            live = r[key]
            line += (f" | {fmt(live.get('p50_ms')) + ' / ' + fmt(live.get('p95_ms')):>22} "
                     f"{str(live['lost']) + '/' + str(live.get('turns', 0) + live['lost']):>9}")
        print(line)
        line = f"{'  of which gateway (send → handled)':<36}"
        for r in results:
            h = r[key]["handled"] or {}
            line += f" | {fmt(h.get('p50_ms')) + ' / ' + fmt(h.get('p95_ms')):>22} {'':>9}"
        print(line)
    kinds = {r["mode"]: {k: p["error_kinds"] for k, p in r["pages"].items() if p["error_kinds"]}
             for r in results}
    if any(kinds.values()):
        print("errors by kind:", json.dumps(kinds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("KEFU_BENCH_DESK_DATABASE_URL")
                        or DEFAULT_DATABASE)
    parser.add_argument("--redis-url", default=os.environ.get("KEFU_BENCH_REDIS_URL")
                        or DEFAULT_REDIS, help="used by the redis mode")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--customers", type=int, help="default: tickets / 5")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="load per mode")
    parser.add_argument("--max-rounds", type=int, default=100_000, help="per agent and mode")
    parser.add_argument("--messages", type=int, default=40, help="live messages per phase")
    parser.add_argument("--agent-streams", action=argparse.BooleanOptionalAction, default=True,
                        help="each agent keeps /events open, as the desk's pages do")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the queue queries' plans")
    args = parser.parse_args()
    customers = args.customers or max(args.tickets // 5, 100)
    BENCH.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # children are stopped on the way out

    if "redis" in args.modes:
        import redis

        try:
            redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            sys.exit(f"--modes redis needs Redis at {args.redis_url}: {exc}")
    cipher = PiiCipher(base64.b64decode(PII_KEY))
    started = time.perf_counter()
    seed_desc, seeded_now = prepare_database(args.database_url, tickets=args.tickets,
                                             customers=customers, reseed=args.reseed,
                                             cipher=cipher)
    if seeded_now:
        print(f"seeded {seed_desc['tickets']:,} tickets ({seed_desc['messages']:,} messages, "
              f"{seed_desc['events']:,} events, {seed_desc['timers']:,} SLA timers), "
              f"{seed_desc['customers']:,} customers, {seed_desc['agents']} agents in "
              f"{seed_desc['seed_seconds']} s (COPY {seed_desc['copy_seconds']} s)", flush=True)
    else:
        print(f"reusing the seed of {seed_desc['tickets']:,} tickets "
              f"(made in {seed_desc['seed_seconds']} s; {time.perf_counter() - started:.1f} s "
              f"to check)", flush=True)

    engine = make_engine(args.database_url)
    factory = make_session_factory(engine)
    agents = load_agents(roster(), args.agents)
    results = []
    try:
        for mode in args.modes:
            results.append(measure_mode(mode, args, factory, agents))
        timings = explain_queues(engine, agents[0].login, show_plans=args.explain)
    finally:
        engine.dispose()

    print_report(results, seed_desc, seeded_now, args)
    print(f"\nqueue statements for {agents[0].login} at this size (EXPLAIN ANALYZE): " +
          ", ".join(f"{what} {ms:.1f} ms" for what, ms in timings))
    (BENCH / "desk_load.json").write_text(json.dumps(
        {"seed": seed_desc, "seeded_now": seeded_now, "args": {
            k: v for k, v in vars(args).items() if k != "database_url"},
         "results": results, "queue_statements_ms": dict(timings)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
