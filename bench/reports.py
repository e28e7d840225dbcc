"""Managers' reports at scale: the dashboard and its drill-downs over a year of tickets.

Generates its own PostgreSQL database (``kefu_bench_reports`` unless ``--database-url``, whose
name must contain "bench"; created when missing, migrated with ``ticketing.core.migrate``):
~200 agents in 12 teams and a manager (``bench.manager``, password hashed with
``ticketing.core.passwords``), customers, ``--tickets`` tickets spread over the 365 local days
ending now (ids in creation order, weekday rhythm), one ``ticket_facts`` row each, ~1.6
``reply_waits`` per ticket, ``--surveys`` surveys of solved tickets (~15 % unanswered, scores
skewed to 5) copied into the facts, and ``--conversations`` assistant conversations. Every
row is written by ``COPY`` from text buffers built a month at a time in one transaction (the
desk's fact listeners only see ORM sessions, so the facts are generated here, consistent with
the tickets and surveys), then ``VACUUM ANALYZE``. Seeded: the rows depend only on the flags
and on the moment the data ends (now). A database holding a generation of the same shape is
reused (``--regenerate`` makes it anew); the measured ranges end on the generation's last day.
The dashboard's day cells are brought up to date as the reports job keeps them
(``ticketing.reports.cell_builds``: every day after a generation, ~12 s for a year), then
the data's last ``--changed-days`` (3) days are marked changed, as a live shop's latest days
are between two builds of the job (every minute): the desk reads those days from the facts.

Then it starts the desk web process (``python -m ticketing.web``) on a free 127.0.0.1 port,
signs in as the manager (``POST /api/v1/session``, cookie) and times over HTTP, one request
at a time, each response read in full:

- the dashboard ``GET /reports?since=..&until=..`` (HTML: figures against the span before,
  trend, table by agent, reasons) for ``--days`` (30) and, for context, 7 and 90 days (90 days
  use the weekly trend, as the page does above 62 days);
- two drill-downs over ``--days``: ``GET /reports/tickets?metric=csat_low`` and
  ``metric=sla_first_response_late&agent=<a busy agent>``;
- ``GET /api/v1/reports/summary`` (the headline figures only) over ``--days``.

**cold**: ``--cold-rounds`` rounds, each in a freshly started desk process (new database
connections, no compiled statements or templates); every endpoint is asked once per round, in
a rotating order, for a range no request of this run has asked before (the ranges end 3 days
apart). PostgreSQL is not restarted and the OS page cache is not dropped (a shared server), so
cold means "process cold, range not recently read by the desk" rather than "disk cold": the
output says how many blocks those requests had to fetch from outside ``shared_buffers``.
**warm**: one more fresh process, one unmeasured request per endpoint, then ``--runs`` rounds
asking every endpoint in turn for the same ranges (ending on the data's last day).

Prints p50 / p95 / max in ms per endpoint and range, cold and warm side by side, then where
the time goes: every endpoint asked ``--sql-runs`` more times of the desk app built in this
process (``create_app`` over the same database and settings, through ASGI, no HTTP) with each
SQL statement it sends timed, so the page's own time splits into SQL and the rest (Python:
ORM rows, links, the template). The heaviest statements of the ``--days`` dashboard, of the
summary and of a drill-down follow with their plan in brief (access paths, sorts spilled to
disk, buffers) from ``EXPLAIN (ANALYZE, BUFFERS)``; ``--explain`` prints those plans in full.
``--against DIR`` measures another checkout of Kefu side by side in the same run (e.g. a
``git worktree`` of the commit before a change): its desk process over the same database,
the two taking turns request by request (cold rounds: who goes first alternates), then the
ratios this / against. Timings are never asserted. Everything runs on 127.0.0.1; the desk
processes are stopped on exit.

    .venv/bin/python bench/reports.py [--tickets 1000000] [--surveys 300000]
        [--conversations 500000] [--days 30] [--runs 30] [--cold-rounds 6]
        [--sql-runs 5] [--changed-days 3] [--against DIR] [--database-url URL] [--regenerate]
        [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sqlalchemy import Engine, event, insert, select, text  # noqa: E402
from bench_db import check_database_url, ensure_database  # noqa: E402
from turn_latency import free_port, start, stop_all  # noqa: E402

from bot.assistant import wait_until_up  # noqa: E402
from ticketing.core import audit, migrate, passwords  # noqa: E402
from ticketing.core.clock import utcnow  # noqa: E402
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.models import AuditLog, ReportMark  # noqa: E402
from ticketing.core.settings import DEFAULT_TIMEZONE, load_settings  # noqa: E402
from ticketing.desk.tickets import ticket_number  # noqa: E402
from ticketing.reports import cell_builds  # noqa: E402
from ticketing.web.app import create_app  # noqa: E402

BENCH = ROOT / "var" / "bench" / "reports"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/kefu_bench_reports"
SEED_MARK = "bench.reports_seed"  # the audit line that describes the generation
SEED_VERSION = 1
PASSWORD = "kefu-bench"  # every generated agent's password (a benchmark database only)
MANAGER = "bench.manager"
PII_KEY = base64.b64encode(hashlib.sha256(b"kefu bench reports pii").digest()).decode()
SPAN_DAYS = 365
CHUNK_DAYS = 30  # days generated and copied at a time (bounded memory)
COLD_STEP_DAYS = 3  # cold ranges end this many days apart
REQUEST_TIMEOUT = 120.0
ZONE = ZoneInfo(DEFAULT_TIMEZONE)  # the desk runs with the default shop time zone
H = 3600

# --- the shape of the desk ---------------------------------------------------------------------
TEAMS = (  # code, name zh, name en, tier, categories, agents, role of the agents
    ("frontline_a", "一线客服A组", "Frontline A", 1, ["*"], 40, "agent"),
    ("frontline_b", "一线客服B组", "Frontline B", 1, ["*"], 40, "agent"),
    ("frontline_c", "一线客服夜班", "Frontline night", 1, ["*"], 40, "agent"),
    ("after_sales", "售后组", "After-sales", 2, ["refund", "quality"], 14, "agent"),
    ("logistics", "物流组", "Logistics", 2, ["logistics"], 14, "agent"),
    ("quality", "品控组", "Quality", 2, ["quality"], 8, "agent"),
    ("payments", "支付组", "Payments", 2, ["payment", "account"], 10, "agent"),
    ("orders", "订单组", "Orders", 2, ["order"], 10, "agent"),
    ("product", "商品咨询组", "Product advice", 2, ["product", "other"], 8, "agent"),
    ("vip", "VIP专席", "VIP desk", 2, ["*"], 8, "agent"),
    ("cs_supervisor", "客服主管", "CS supervisors", 2, ["order", "product", "other"], 6,
     "supervisor"),
    ("operations", "运营部", "Operations", 3, ["*"], 4, "agent"),
)
TIER2_TEAM = {"logistics": "logistics", "refund": "after_sales", "quality": "quality",
              "payment": "payments", "account": "payments", "order": "orders",
              "product": "product", "other": "product"}
CATEGORIES = {"logistics": 30, "refund": 15, "order": 15, "quality": 12, "product": 10,
              "payment": 8, "other": 6, "account": 4}
PRIORITIES = {"low": 15, "normal": 55, "high": 22, "urgent": 8}
SLA_HOURS = {"low": (8, 120), "normal": (4, 72), "high": (2, 48), "urgent": (1, 24)}
TIERS = {1: 80, 2: 17, 3: 3}
CHANNELS = {"widget": 55, "telegram": 35, "desk": 10}
NEXT_WAITS = {0: 62, 1: 22, 2: 11, 3: 5}  # waits after the first: ~1.6 reply waits a ticket
SCORES = {5: 58, 4: 20, 3: 9, 2: 5, 1: 8}
WEEKDAY = (1.1, 1.05, 1.0, 1.0, 1.0, 0.9, 0.85)
STATES_BY_AGE = (  # (age below, state weights): most tickets older than a week are closed
    (H, {"new": 60, "open": 40}),
    (2 * 24 * H, {"new": 4, "open": 20, "waiting_customer": 14, "solved": 50, "closed": 12}),
    (7 * 24 * H, {"new": 0.5, "open": 4, "waiting_customer": 3, "solved": 45, "closed": 47.5}),
    (10 ** 12, {"new": 0.1, "open": 0.8, "waiting_customer": 0.6, "solved": 1, "closed": 97.5}),
)
SUBJECTS = {
    "logistics": "快递三天没更新了", "refund": "申请退款一直没到账", "order": "订单地址想修改",
    "quality": "收到的商品有破损", "product": "这款耳机支持降噪吗", "payment": "付款扣了两次钱",
    "other": "发票怎么开", "account": "账号登录不上",
}
COMMENTS_LOW = ("等了太久才有人回复", "问题还是没解决", "客服态度一般", "退款太慢了")
COMMENTS_HIGH = ("谢谢，很满意", "处理很快，点赞")
SURNAMES = "李王张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛")

COLUMNS = {
    "teams": "id, code, name_zh, name_en, tier, categories",
    "agents": ("id, login, display_name, first_name, role, team_id, availability, "
               "max_open_tickets, password_hash, language, failed_logins, created_at"),
    "customers": "id, name, language, segment, created_at",
    "tickets": ("id, number, customer_id, channel, category, priority, tier, state, subject, "
                "language, team_id, owner_id, flags, created_at, claimed_at, first_response_at, "
                "solved_at, closed_at, reopen_count, version"),
    "ticket_facts": (
        "ticket_id, created_at, created_day, channel, category, priority, tier, segment, "
        "team_id, owner_id, state, handed_off, first_response_at, first_response_s, "
        "first_response_bh_s, replies_waited, first_solved_at, last_solved_at, "
        "resolution_first_s, resolution_first_bh_s, resolution_last_s, resolution_last_bh_s, "
        "reopened, escalated, sla_first_response, sla_first_response_due_at, "
        "sla_next_response, sla_next_response_due_at, sla_resolution, sla_resolution_due_at, "
        "survey_sent_at, survey_day, survey_agent_id, survey_team_id, csat_score, "
        "refreshed_at"),
    "reply_waits": "ticket_id, seq, asked_at, answered_at, seconds, business_seconds",
    "surveys": ("id, ticket_id, customer_id, agent_id, team_id, category, channel, sent_at, "
                "score, comment, answered_at"),
    "conversation_facts": ("id, conversation_id, channel, started_at, started_day, "
                           "last_message_at, messages, ticket_id, handed_off"),
}
CHUNKED = ("tickets", "ticket_facts", "reply_waits", "surveys", "conversation_facts")


@dataclass(frozen=True)
class Shape:
    tickets: int
    surveys: int
    conversations: int

    @property
    def customers(self) -> int:
        return max(self.tickets // 8, 100)


@dataclass(frozen=True)
class SeedAgent:
    id: int
    login: str
    role: str
    team: str


def roster() -> list[SeedAgent]:
    """The generated agents, ids from 1 (the first frontline agent is the busiest), and the
    manager last."""
    found: list[SeedAgent] = []
    for code, *_names, count, role in TEAMS:
        for k in range(1, count + 1):
            found.append(SeedAgent(len(found) + 1, f"bench.{code}.{k:02d}", role, code))
    found.append(SeedAgent(len(found) + 1, MANAGER, "manager", "operations"))
    return found


class Pick:
    """A weighted choice by bisection (``random.choices`` rebuilds its table every call)."""

    def __init__(self, weights: dict[Any, float]) -> None:
        self.values = list(weights)
        self.cumulative: list[float] = []
        total = 0.0
        for weight in weights.values():
            total += weight
            self.cumulative.append(total)
        self.total = total

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


_HOURS: dict[int, str] = {}
_DAYS: dict[int, str] = {}


def ts(epoch: float | None) -> str:
    """A COPY text timestamp (UTC, whole seconds), or NULL."""
    if epoch is None:
        return "\\N"
    whole = int(epoch)
    hour, rest = divmod(whole, H)
    prefix = _HOURS.get(hour)
    if prefix is None:
        prefix = _HOURS[hour] = time.strftime("%Y-%m-%d %H:", time.gmtime(hour * H))
    minute, second = divmod(rest, 60)
    return f"{prefix}{minute:02d}:{second:02d}+00"


def local_day(epoch: float) -> str:
    """The shop's local date of ``epoch`` (cached per quarter hour: every zone offset is one)."""
    quarter = int(epoch) // 900
    day = _DAYS.get(quarter)
    if day is None:
        day = _DAYS[quarter] = datetime.fromtimestamp(quarter * 900, ZONE).date().isoformat()
    return day


def num(value: float | None) -> str:
    return "\\N" if value is None else f"{value:.1f}"


def opt(value: Any) -> str:
    return "\\N" if value is None else str(value)


def line(*fields: str) -> str:
    return "\t".join(fields) + "\n"


@dataclass
class Day:
    day: date
    start: int  # epoch seconds, [start, end)
    end: int
    tickets: int = 0
    conversations: int = 0


@dataclass
class TicketDraft:
    """One generated ticket while its facts are drawn (times in epoch seconds)."""

    id: int
    created: int
    created_day: str
    age: int
    customer: int
    segment: str
    category: str
    priority: str
    tier: int
    channel: str
    state: str
    owner: SeedAgent | None
    handed_off: bool
    fr_budget: float  # SLA budgets, seconds
    res_budget: float
    fr_s: float | None = None
    fr_at: float | None = None
    fr_bh: float | None = None
    fr_verdict: str = "pending"
    fr_due: float | None = None
    waits: list[tuple[int, float, float | None, float | None, float | None]] = field(
        default_factory=list)  # seq, asked, answered, seconds, business seconds
    nr_verdict: str | None = None
    nr_due: float | None = None
    first_solved: float | None = None
    last_solved: float | None = None
    reopened: int = 0
    res_verdict: str = "pending"
    res_due: float | None = None
    escalated: int = 0
    survey: tuple[float, int | None, str | None, float | None] | None = None

    @property
    def solved_now(self) -> bool:
        return self.state in ("solved", "closed")


class Generator:
    """Rows for COPY, a chunk of local days at a time; ids are assigned here (fresh schema)."""

    def __init__(self, shape: Shape, now: datetime) -> None:
        self.shape = shape
        self.now = int(now.timestamp())
        self.rng = random.Random(20261211)
        self.agents = roster()
        self.team_ids = {code: i for i, (code, *_rest) in enumerate(TEAMS, start=1)}
        self.workers: dict[str, list[SeedAgent]] = defaultdict(list)
        for agent in self.agents:
            if agent.role in ("agent", "supervisor"):
                self.workers[agent.team].append(agent)
        self.frontline = [team[0] for team in TEAMS if team[3] == 1]
        self.pick = {name: Pick(weights) for name, weights in (
            ("category", CATEGORIES), ("priority", PRIORITIES), ("tier", TIERS),
            ("channel", CHANNELS), ("next_waits", NEXT_WAITS), ("score", SCORES))}
        self.states = [(age, Pick(weights)) for age, weights in STATES_BY_AGE]
        self.survey_share = min(1.0, shape.surveys / (shape.tickets * 0.985))
        self.ticket_id = self.survey_id = self.conversation_id = 0
        self.counts: Counter[str] = Counter()
        self.days = self._plan()

    def _plan(self) -> list[Day]:
        """The local days ending today, with ticket and conversation counts by weekday (today
        only up to now)."""
        today = datetime.fromtimestamp(self.now, ZONE).date()
        days = []
        for back in range(SPAN_DAYS - 1, -1, -1):
            day = today - timedelta(days=back)
            start = int(datetime.combine(day, datetime.min.time(), ZONE).timestamp())
            end = min(int(datetime.combine(day + timedelta(days=1), datetime.min.time(),
                                           ZONE).timestamp()), self.now)
            days.append(Day(day, start, end))
        weights = [WEEKDAY[d.day.weekday()] * (d.end - d.start) / 86400 for d in days]
        for name, total in (("tickets", self.shape.tickets),
                            ("conversations", self.shape.conversations)):
            whole, done, running = sum(weights), 0, 0.0
            for d, weight in zip(days, weights):
                running += weight
                upto = round(total * running / whole)
                setattr(d, name, upto - done)
                done = upto
        return days

    # the desk's people
    def team_lines(self) -> str:
        return "".join(line(str(i), code, zh, en, str(tier), json.dumps(categories))
                       for i, (code, zh, en, tier, categories, *_r) in enumerate(TEAMS, 1))

    def agent_lines(self, password_hash: str) -> str:
        rng = random.Random(7)
        created = ts(self.now - 400 * 86400)
        out = []
        for a in self.agents:
            given = rng.choice(GIVEN)
            name = "经理" if a.login == MANAGER else f"{rng.choice(SURNAMES)}{given}{a.id:03d}"
            out.append(line(str(a.id), a.login, name, f"小{given}", a.role,
                            str(self.team_ids[a.team]), "offline", "20", password_hash, "zh",
                            "0", created))
        return "".join(out)

    def customer_lines(self) -> str:
        start = self.now - 800 * 86400
        return "".join(line(str(i), f"客户{i}", "en" if i % 7 == 0 else "zh", _segment(i),
                            ts(start + i * 97 % (700 * 86400)))
                       for i in range(1, self.shape.customers + 1))

    # tickets and what hangs off them
    def chunks(self) -> Iterator[tuple[str, dict[str, io.StringIO]]]:
        """(first day of the chunk, a COPY text buffer per table) for ``CHUNK_DAYS`` days."""
        for i in range(0, len(self.days), CHUNK_DAYS):
            days = self.days[i:i + CHUNK_DAYS]
            out = {name: io.StringIO() for name in CHUNKED}
            for day in days:
                handed = self._day_tickets(day, out)
                self._day_conversations(day, handed, out["conversation_facts"])
            yield days[0].day.isoformat(), out

    def _day_tickets(self, day: Day, out: dict[str, io.StringIO]) -> list[int]:
        """The day's tickets in creation order; returns the ids the bot handed off."""
        rng = self.rng
        times = sorted(rng.randrange(day.start, day.end) for _ in range(day.tickets))
        handed = []
        for created in times:
            self.ticket_id += 1
            if self._ticket(self.ticket_id, created, day.day.isoformat(), out):
                handed.append(self.ticket_id)
        return handed

    def _ticket(self, tid: int, created: int, created_day: str,
                out: dict[str, io.StringIO]) -> bool:
        """One ticket and its rows (the random draws in a fixed order: seeded data)."""
        t = self._basics(tid, created, created_day)
        self._first_response(t)
        self._next_waits(t)
        self._solving(t)
        t.escalated = 1 if t.tier > 1 and self.rng.random() < 0.7 else 0
        self._survey(t)
        self._write(t, out)
        self.counts.update(tickets=1, reply_waits=len(t.waits), surveys=t.survey is not None)
        return t.handed_off

    def _basics(self, tid: int, created: int, created_day: str) -> TicketDraft:
        rng, pick = self.rng, self.pick
        customer = rng.randrange(1, self.shape.customers + 1)
        segment = _segment(customer)
        category, priority = pick["category"](rng), pick["priority"](rng)
        tier, channel = pick["tier"](rng), pick["channel"](rng)
        age = self.now - created
        state = next(p for limit, p in self.states if age < limit)(rng)
        owner = None if state == "new" else self._owner(tier, category, segment)
        vip = 0.5 if segment == "vip" else 1.0
        return TicketDraft(
            id=tid, created=created, created_day=created_day, age=age, customer=customer,
            segment=segment, category=category, priority=priority, tier=tier, channel=channel,
            state=state, owner=owner, handed_off=channel != "desk" and rng.random() < 0.85,
            fr_budget=SLA_HOURS[priority][0] * H * vip, res_budget=SLA_HOURS[priority][1] * H * vip)

    def _first_response(self, t: TicketDraft) -> None:
        """The first wait: from reaching the desk to the first public reply (if any yet)."""
        rng = self.rng
        answered = t.owner is not None and not (t.state == "open" and t.age < 86400
                                                and rng.random() < 0.3)
        if answered or t.solved_now:
            late = rng.random() < 0.08
            seconds = (t.fr_budget * rng.uniform(1.05, 2.5) if late
                       else min(rng.lognormvariate(math.log(900), 1.3), t.fr_budget * 0.95))
            t.fr_s = min(seconds, max(t.age - 60, 1.0))
            t.fr_at = t.created + t.fr_s
            t.fr_verdict = "breached" if t.fr_s > t.fr_budget else "met"
        else:
            t.fr_verdict, t.fr_due = "pending", t.created + t.fr_budget
        t.fr_bh = None if t.fr_s is None else t.fr_s * rng.uniform(0.45, 0.95)
        t.waits.append((0, t.created, t.fr_at, t.fr_s, t.fr_bh))

    def _next_waits(self, t: TicketDraft) -> None:
        """Next responses: the customer writes again after an agent's reply."""
        if t.fr_at is None:
            return
        rng, last = self.rng, t.fr_at
        for seq in range(1, self.pick["next_waits"](rng) + 1):
            asked = last + rng.uniform(300, 8 * H)
            if asked >= self.now - 60:
                return
            late = rng.random() < 0.1
            seconds = (t.fr_budget * rng.uniform(1.05, 2.0) if late
                       else min(rng.lognormvariate(math.log(1800), 1.2), t.fr_budget * 0.95))
            if asked + seconds > self.now or (t.state in ("open", "waiting_customer")
                                              and seq > 1 and rng.random() < 0.3):
                t.waits.append((seq, asked, None, None, None))
                t.nr_verdict, t.nr_due = "pending", asked + t.fr_budget
                return
            t.waits.append((seq, asked, asked + seconds, seconds,
                            seconds * rng.uniform(0.45, 0.95)))
            t.nr_verdict = "breached" if late or t.nr_verdict == "breached" else "met"
            last = asked + seconds

    def _solving(self, t: TicketDraft) -> None:
        """Solved (and maybe reopened) tickets, and the resolution clock's verdict."""
        rng = self.rng
        if t.solved_now or (t.state in ("open", "waiting_customer") and t.age > 7 * 86400
                            and rng.random() < 0.5):
            late = rng.random() < 0.12
            base = (t.fr_s or 0.0) + (t.res_budget * rng.uniform(1.05, 2.5) if late
                                      else min(rng.lognormvariate(math.log(18 * H), 1.1),
                                               t.res_budget * 0.9))
            t.first_solved = max(t.created + min(base, max(t.age - 30, 1.0)),
                                 t.fr_at or t.created)
            t.reopened = 1 if not t.solved_now or rng.random() < 0.05 else 0
            if t.solved_now:
                t.last_solved = t.first_solved if not t.reopened else min(
                    t.first_solved + rng.lognormvariate(math.log(30 * H), 0.8), self.now - 10)
        if t.last_solved is not None:
            t.res_verdict = "breached" if t.last_solved - t.created > t.res_budget else "met"
        else:
            t.res_verdict = "pending"
            t.res_due = None if t.state == "waiting_customer" else t.created + t.res_budget

    def _survey(self, t: TicketDraft) -> None:
        """The satisfaction survey of a solved ticket: ~15 % never answered."""
        rng = self.rng
        if t.last_solved is None or rng.random() >= self.survey_share:
            return
        sent = t.last_solved + rng.uniform(60, 1800)
        if sent >= self.now:
            return
        score = None if rng.random() < 0.15 else self.pick["score"](rng)
        comment = None
        if score is not None and score <= 2 and rng.random() < 0.7:
            comment = rng.choice(COMMENTS_LOW)
        elif score == 5 and rng.random() < 0.2:
            comment = rng.choice(COMMENTS_HIGH)
        answered = None if score is None else min(sent + rng.uniform(30, 2 * H), self.now)
        t.survey = (sent, score, comment, answered)

    def _write(self, t: TicketDraft, out: dict[str, io.StringIO]) -> None:
        """The ticket's lines: tickets, reply_waits, surveys and ticket_facts."""
        team_id = opt(self.team_ids[t.owner.team] if t.owner else None)
        owner_id = opt(t.owner.id if t.owner else None)
        closed_at = (min(t.last_solved + 7 * 86400, self.now - 5)
                     if t.state == "closed" and t.last_solved is not None else None)
        claimed = (None if t.owner is None
                   else t.created + min(t.fr_s or 600.0, self.rng.uniform(20, 900)))
        out["tickets"].write(line(
            str(t.id), ticket_number(t.id, datetime.fromtimestamp(t.created, timezone.utc)),
            str(t.customer), t.channel, t.category, t.priority, str(t.tier), t.state,
            SUBJECTS[t.category], "en" if t.customer % 7 == 0 else "zh", team_id, owner_id,
            "[]", ts(t.created), ts(claimed), ts(t.fr_at), ts(t.last_solved), ts(closed_at),
            str(t.reopened), str(2 + len(t.waits) + t.reopened)))
        for seq, asked, answered, seconds, business in t.waits:
            out["reply_waits"].write(line(str(t.id), str(seq), ts(asked), ts(answered),
                                          num(seconds), num(business)))
        survey = ["\\N"] * 5
        if t.survey is not None:
            sent, score, comment, answered = t.survey
            self.survey_id += 1
            out["surveys"].write(line(str(self.survey_id), str(t.id), str(t.customer),
                                      owner_id, team_id, t.category, t.channel, ts(sent),
                                      opt(score), opt(comment), ts(answered)))
            survey = [ts(sent), local_day(sent), owner_id, team_id, opt(score)]
        res_first = None if t.first_solved is None else t.first_solved - t.created
        res_last = None if t.last_solved is None else t.last_solved - t.created
        out["ticket_facts"].write(line(
            str(t.id), ts(t.created), t.created_day, t.channel, t.category, t.priority,
            str(t.tier), t.segment, team_id, owner_id, t.state, "t" if t.handed_off else "f",
            ts(t.fr_at), num(t.fr_s), num(t.fr_bh),
            str(sum(1 for w in t.waits[1:] if w[2] is not None)), ts(t.first_solved),
            ts(t.last_solved), num(res_first), num(None if res_first is None else res_first * 0.6),
            num(res_last), num(None if res_last is None else res_last * 0.6), str(t.reopened),
            str(t.escalated), t.fr_verdict, ts(t.fr_due), opt(t.nr_verdict), ts(t.nr_due),
            t.res_verdict, ts(t.res_due), *survey, ts(self.now)))

    def _owner(self, tier: int, category: str, segment: str) -> SeedAgent:
        rng = self.rng
        if tier == 1:
            team = rng.choice(self.frontline)
        elif tier == 3:
            team = "operations"
        elif segment == "vip" and rng.random() < 0.5:
            team = "vip"
        else:
            team = TIER2_TEAM[category] if rng.random() < 0.9 else "cs_supervisor"
        return rng.choice(self.workers[team])

    def _day_conversations(self, day: Day, handed: list[int], out: io.StringIO) -> None:
        """The assistant's conversations of the day: ~35 % handed to a ticket of that day."""
        rng = self.rng
        for _ in range(day.conversations):
            self.conversation_id += 1
            cid = self.conversation_id
            started = rng.randrange(day.start, day.end)
            channel = "widget" if rng.random() < 0.6 else "telegram"
            messages = rng.randint(1, 24)
            last = min(started + messages * rng.randint(15, 90), self.now)
            ticket, handed_off = "\\N", "f"
            if handed and rng.random() < 0.35:
                ticket, handed_off = str(rng.choice(handed)), "t"
            out.write(line(str(cid), f"{channel}:bench{cid}", channel, ts(started),
                           day.day.isoformat(), ts(last), str(messages), ticket, handed_off))
        self.counts.update(conversations=day.conversations)


def _segment(customer: int) -> str:
    return "vip" if customer % 6 == 0 else "potential" if customer % 7 == 3 else "regular"


# --- the database ------------------------------------------------------------------------------
def seed_info(engine: Engine) -> dict[str, Any] | None:
    with make_session_factory(engine)() as session:
        row = session.scalar(select(AuditLog).where(AuditLog.action == SEED_MARK)
                             .order_by(AuditLog.id.desc()).limit(1))
        return dict(row.details) if row is not None else None


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.scalar(text(f"SELECT count(*) FROM {name}")) or 0
                for name in ("tickets", "ticket_facts", "reply_waits", "surveys",
                             "conversation_facts")}


def reset_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def generate(engine: Engine, shape: Shape) -> dict[str, Any]:
    """COPY the whole generation in one transaction, a month at a time, then VACUUM ANALYZE."""
    started = time.perf_counter()
    generator = Generator(shape, utcnow())
    password_hash = passwords.hash_password(PASSWORD)  # one scrypt hash for every agent
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            def copy(table: str, data: str) -> None:
                with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as out:
                    out.write(data)

            copy("teams", generator.team_lines())
            copy("agents", generator.agent_lines(password_hash))
            copy("customers", generator.customer_lines())
            for first_day, buffers in generator.chunks():
                for table in CHUNKED:
                    copy(table, buffers[table].getvalue())
                print(f"  {first_day}: {generator.counts['tickets']:>9,} tickets "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            for table in ("teams", "agents", "customers", "tickets", "surveys",
                          "conversation_facts"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        conn.commit()
    finally:
        raw.close()
    copied = time.perf_counter() - started
    vacuum(engine)
    info = {"version": SEED_VERSION, "tickets": shape.tickets, "surveys": shape.surveys,
            "conversations": shape.conversations, "customers": shape.customers,
            "agents": len(generator.agents), "counts": dict(generator.counts),
            "now": datetime.fromtimestamp(generator.now, timezone.utc).isoformat(),
            "last_day": generator.days[-1].day.isoformat(),
            "copy_seconds": round(copied, 1),
            "seed_seconds": round(time.perf_counter() - started, 1)}
    with make_session_factory(engine).begin() as session:
        audit.record(session, action=SEED_MARK, actor_type="system", details=info)
    return info


def prepare_database(url: str, shape: Shape, *, regenerate: bool) -> tuple[dict[str, Any], bool]:
    """(the generation's description, made now): reuses one of the same shape whose row counts
    are still those it made, unless ``regenerate``."""
    name = check_database_url(url, "bench/reports.py")
    ensure_database(url, name)
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        info = seed_info(engine)
        wanted = {"version": SEED_VERSION, "tickets": shape.tickets, "surveys": shape.surveys,
                  "conversations": shape.conversations}
        if info is not None and not regenerate and all(info.get(k) == v
                                                       for k, v in wanted.items()):
            counts = table_counts(engine)
            made = info["counts"]
            expected = {"tickets": made["tickets"], "ticket_facts": made["tickets"],
                        "reply_waits": made["reply_waits"], "surveys": made["surveys"],
                        "conversation_facts": made["conversations"]}
            if counts == expected:
                vacuum(engine)  # this server may run without autovacuum
                return info, False
            print(f"row counts differ from the generation ({counts} != {expected})")
        if info is None and not regenerate and table_counts(engine)["tickets"]:
            sys.exit(f"{name} has tickets but no generation of this bench: --regenerate "
                     f"replaces them")
        if info is not None or regenerate:
            print(f"generating {name} anew ({'--regenerate' if regenerate else 'another shape'})")
            reset_schema(engine)
            engine.dispose()
            migrate.upgrade(url)
        return generate(engine, shape), True
    finally:
        engine.dispose()


def prepare_cells(database_url: str, engine: Engine, last: date, changed: int
                  ) -> dict[str, Any]:
    """The dashboard's day cells as the reports job keeps them (``reports.cell_builds``): every
    day built that needs it (all of them after a generation: the generator writes facts by
    COPY, unseen by the facts' listeners), then the last ``changed`` days marked changed, as
    a live shop's recent days are between two rounds of the job (their tickets are still
    being answered, solved and rated): the dashboard reads those days from the facts."""
    settings = load_settings(child_env(database_url, 0))
    factory = make_session_factory(engine, schedule=settings.schedule)
    run = cell_builds.build(factory)
    with factory.begin() as session:
        session.execute(insert(ReportMark), [{"day": (last - timedelta(days=i)).isoformat()}
                                             for i in range(changed)])
    print(f"day cells: {run.days} days built in {run.seconds:.1f} s; the last {changed} days "
          f"marked changed (read from the facts, as between two rounds of the reports job)")
    return {"built_days": run.days, "build_seconds": round(run.seconds, 1),
            "changed_days": changed}


def database_sizes(engine: Engine) -> dict[str, int]:
    """Bytes: the database and the reports' tables (with their indexes)."""
    with engine.connect() as conn:
        sizes = {"database": conn.scalar(text("SELECT pg_database_size(current_database())"))}
        for name in ("ticket_facts", "reply_waits", "conversation_facts", "tickets", "surveys"):
            sizes[name] = conn.scalar(text(f"SELECT pg_total_relation_size('{name}')"))
    return sizes


def block_stats(engine: Engine) -> tuple[int, int]:
    """(blocks read from outside shared_buffers, blocks found in them) in this database."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        read, hit = conn.execute(text(
            "SELECT blks_read, blks_hit FROM pg_stat_database "
            "WHERE datname = current_database()")).one()
    return int(read), int(hit)


# --- what is asked -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    key: str
    label: str
    path: str
    days: int
    params: tuple[tuple[str, str], ...] = ()
    kind: str = "dashboard"  # dashboard | drill | summary

    def url(self, last: date) -> str:
        first = last - timedelta(days=self.days - 1)
        query = "&".join(f"{k}={v}" for k, v in (("since", first.isoformat()),
                                                 ("until", last.isoformat()), *self.params))
        return f"{self.path}?{query}"


def probes(days: int, agent_id: int) -> list[Probe]:
    found = [Probe(f"dashboard_{n}", f"GET /reports, {n} days (HTML)", "/reports", n)
             for n in sorted({7, days, 90})]
    found += [
        Probe("drill_csat_low", f"GET /reports/tickets csat_low, {days} d", "/reports/tickets",
              days, (("metric", "csat_low"),), "drill"),
        Probe("drill_late_agent", f"… sla_first_response_late&agent, {days} d",
              "/reports/tickets", days,
              (("metric", "sla_first_response_late"), ("agent", str(agent_id))), "drill"),
        Probe("summary", f"GET /api/v1/reports/summary, {days} d", "/api/v1/reports/summary",
              days, (), "summary"),
    ]
    return found


# --- the desk process --------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkout:
    """A tree of Kefu whose desk process is measured: this one, or ``--against`` another."""

    label: str
    root: Path


def rotated(items: Sequence[Any], by: int) -> list[Any]:
    return [*items[by % len(items):], *items[:by % len(items)]]


def child_env(database_url: str, port: int, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_DATABASE_URL=database_url, KEFU_VAR_DIR=str(BENCH), KEFU_PII_KEY=PII_KEY,
               KEFU_DESK_HOST="127.0.0.1", KEFU_DESK_PORT=str(port),
               KEFU_RATE_LIMIT_PER_MINUTE="0", KEFU_DEMO_PAGE="off",
               KEFU_AUTO_ASSIGN_AFTER="off", PYTHONPATH=str(root))
    return env


class DeskProcess:
    """A freshly started desk web process of one checkout, and a client signed in as the
    manager."""

    def __init__(self, database_url: str, checkout: Checkout, label: str) -> None:
        self.database_url, self.checkout, self.label = database_url, checkout, label
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: httpx.Client | None = None

    def __enter__(self) -> DeskProcess:
        port, root = free_port(), self.checkout.root
        self.proc = start([sys.executable, "-m", "ticketing.web"],
                          child_env(self.database_url, port, root), root,
                          BENCH / f"desk-{self.checkout.label}-{self.label}.log")
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/health", process=self.proc, timeout=120)
        self.client = httpx.Client(base_url=base, follow_redirects=False,
                                   timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0))
        response = self.client.post("/api/v1/session",
                                    json={"login": MANAGER, "password": PASSWORD})
        if response.status_code != 200:
            raise RuntimeError(f"sign-in as {MANAGER} answered {response.status_code}")
        return self

    def timed(self, url: str) -> tuple[float, httpx.Response]:
        assert self.client is not None
        started = time.perf_counter()
        response = self.client.get(url)
        _ = response.content  # read in full
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}: "
                               f"{response.text[:300]}")
        return seconds, response

    def __exit__(self, *_exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is not None:
            stop_all([self.proc])


# --- measuring over HTTP -----------------------------------------------------------------------
Timings = dict[str, dict[str, list[float]]]  # checkout label -> probe key -> seconds


def measure_cold(url: str, checkouts: list[Checkout], asked: list[Probe], last: date,
                 rounds: int) -> Timings:
    """Per round and checkout a fresh desk process asking each probe once (order rotated)
    for a range of its own; with two checkouts, which one goes first alternates."""
    cold: Timings = {c.label: defaultdict(list) for c in checkouts}
    for r in range(rounds):
        for checkout in rotated(checkouts, r):
            with DeskProcess(url, checkout, f"cold{r + 1}") as desk:
                for probe in rotated(asked, r):
                    shift = COLD_STEP_DAYS * (1 + r * len(asked) + asked.index(probe))
                    seconds, _ = desk.timed(probe.url(last - timedelta(days=shift)))
                    cold[checkout.label][probe.key].append(seconds)
        for checkout in checkouts:
            print(f"  cold round {r + 1}/{rounds} {checkout.label}: " + ", ".join(
                f"{p.key} {cold[checkout.label][p.key][-1] * 1000:.0f}" for p in asked)
                + " ms", flush=True)
    return cold


def measure_warm(url: str, checkouts: list[Checkout], asked: list[Probe], last: date,
                 runs: int) -> tuple[Timings, dict[str, Any]]:
    """One process per checkout: an unmeasured request per probe, then ``runs`` rounds of
    all of them, the checkouts taking turns request by request. Also returns the summary
    API's figures for the main range (what the data looks like)."""
    warm: Timings = {c.label: defaultdict(list) for c in checkouts}
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        desks = [stack.enter_context(DeskProcess(url, c, "warm")) for c in checkouts]
        for desk in desks:
            for probe in asked:
                _, response = desk.timed(probe.url(last))
                if probe.kind == "summary" and not figures:
                    figures = {f["key"]: f for f in response.json()["figures"]}
        for i in range(runs):
            for probe in asked:
                for desk in rotated(desks, i):
                    warm[desk.checkout.label][probe.key].append(desk.timed(probe.url(last))[0])
            if (i + 1) % 10 == 0 or i + 1 == runs:
                print(f"  warm round {i + 1}/{runs}", flush=True)
    return warm, figures


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """n, p50 (median), p95 (nearest rank) and max, in ms."""
    ordered = sorted(values)
    rank = max(0, math.ceil(0.95 * len(ordered)) - 1)
    return {"n": len(ordered), "p50": statistics.median(ordered) * 1000,
            "p95": ordered[rank] * 1000, "max": ordered[-1] * 1000}


# --- where the time goes -----------------------------------------------------------------------
@dataclass
class Statement:
    sql: str
    parameters: Any
    times: list[float] = field(default_factory=list)

    @property
    def what(self) -> str:
        return describe(self.sql)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000


@dataclass
class Split:
    """One page asked of the desk app in this process: request and SQL seconds per run."""

    requests: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)


def describe(sql: str) -> str:
    """A short name for a statement the reports send: what it computes and its grouping."""
    s = " ".join(sql.split())
    if s.upper().startswith("SET "):
        return s
    found = re.search(r"GROUP BY (.*?)(?: ORDER BY| LIMIT|$)", s)
    group = found.group(1) if found else ""
    if "FROM report_cells" in s or "FROM (SELECT report_cells" in s:
        by = ("by week" if "to_char" in group else "by day" if "day" in group
              else "by agent" if "owner_id" in group else "by team" if "team_id" in group
              else "the period")
        return f"day cells and changed days' facts, {by}"
    by = ("this period and the one before" if " UNION ALL " in s  # one aggregate a window
          else "" if not group else "this period and the one before" if ">=" in group
          else "by week" if "to_char" in group else "by day" if "_day" in group
          else "by agent" if "agent_id" in group or "owner_id" in group
          else "by team" if "team_id" in group else "by " + group.split(".")[-1].split(",")[0])
    if "percentile_cont" in s:
        what = ("reply-wait percentiles (join)" if "reply_waits" in s
                else "ticket counts and duration percentiles" if "count(*)" in s
                else "duration percentiles")
    elif "conversation_facts" in s:
        what = "conversation counts"
    elif "survey_sent_at" in s and group:
        what = "survey counts"
    elif "ticket_facts" in s and group:
        what = "ticket counts"
    elif "ticket_facts" in s and "JOIN tickets" in s:
        what = "list page (joins)"
    elif "ticket_facts" in s and "state IN" in s and "created_at" not in s:
        what = "breached now (open tickets)"
    elif "ticket_facts" in s:
        what = "list total"
    else:
        table = re.search(r"FROM (\w+)", s)
        what = f"{table.group(1) if table else s[:40]} lookup"
    return f"{what}, {by}" if by else what


def sql_split(database_url: str, asked: list[Probe], last: date, runs: int) -> dict[str, Split]:
    """Each probe's page asked of the desk app in this process (ASGI, no HTTP, the same
    settings as the desk process) ``runs`` times after one unmeasured request, signed in as
    the manager, with every statement it sends timed."""
    settings = load_settings(child_env(database_url, 0))
    engine = make_engine(settings.database_url)
    app = create_app(settings=settings,
                     session_factory=make_session_factory(engine, schedule=settings.schedule))
    sink: list[tuple[str, Any, float]] = []

    def before(conn: Any, _cursor: Any, _statement: str, _parameters: Any, _context: Any,
               _many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
              _many: bool) -> None:
        sink.append((statement, parameters,
                     time.perf_counter() - conn.info["bench_started"].pop()))

    async def ask_all() -> dict[str, Split]:
        found: dict[str, Split] = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                     timeout=REQUEST_TIMEOUT) as client:
            signed = await client.post("/api/v1/session",
                                       json={"login": MANAGER, "password": PASSWORD})
            if signed.status_code != 200:
                raise RuntimeError(f"in-process sign-in answered {signed.status_code}")
            for probe in asked:
                split = found[probe.key] = Split()
                for run in range(runs + 1):
                    sink.clear()
                    started = time.perf_counter()
                    response = await client.get(probe.url(last))
                    seconds = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"in-process {probe.key}: {response.status_code}")
                    if run == 0:
                        split.statements = [Statement(sql, params) for sql, params, _ in sink]
                        continue
                    split.requests.append(seconds)
                    split.sql.append(sum(t for *_r, t in sink))
                    for statement, (_sql, _params, took) in zip(split.statements, sink):
                        statement.times.append(took)
        return found

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        return asyncio.run(ask_all())
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        engine.dispose()


def explain(engine: Engine, statement: Statement, settings: list[Statement]) -> list[str]:
    """The plan of ``statement`` run once more, after the page's ``SET`` statements."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for setting in settings:
                cur.execute(setting.sql, setting.parameters)
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.parameters)
            plan = [r[0] for r in cur.fetchall()]
        raw.rollback()
    finally:
        raw.close()
    return plan


def plan_brief(plan: list[str]) -> str:
    """Access paths, sorts that went to disk and buffers of a plan, in one line."""
    scans: Counter[str] = Counter()
    for row in plan:
        found = re.search(r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan)"
                          r"(?: Backward)?(?: using (\w+))? on (\w+)", row)
        if found:
            scans[f"{found.group(1).lower()} {found.group(3)}"
                  + (f" ({found.group(2)})" if found.group(2) else "")] += 1
    disk = [int(m.group(1)) for row in plan for m in [re.search(r"Disk: (\d+)kB", row)] if m]
    top = next((row for row in plan if "Buffers:" in row), "")
    parts = [", ".join(sorted(scans)) or "no scans"]
    if disk:
        parts.append(f"{len(disk)} sort(s) spilled to disk ({sum(disk) / 1024:.0f} MB)")
    if top:
        parts.append("buffers " + re.sub(r"\s+", " ", top.split("Buffers:")[1]).strip())
    return "; ".join(parts)


# --- the report --------------------------------------------------------------------------------
def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_table(title: str, asked: list[Probe], cold: dict[str, list[float]],
                warm: dict[str, list[float]], split: dict[str, Split] | None) -> dict[str, Any]:
    """p50 / p95 / max per endpoint, cold and warm, and the in-process split when known."""
    print(f"\n{title:<44} | {'cold (ms over HTTP)':^27} | {'warm (ms over HTTP)':^27} | "
          f"{'in-process (ms)':^20}")
    print(f"{'endpoint, range':<44} | {'n':>3} {'p50':>7} {'p95':>7} {'max':>7} | "
          f"{'n':>3} {'p50':>7} {'p95':>7} {'max':>7} | {'page':>6} {'SQL':>6} {'SQL%':>6}")
    print("-" * 126)
    table: dict[str, Any] = {}
    for probe in asked:
        c, w = quantiles(cold[probe.key]), quantiles(warm[probe.key])
        page = sql = None
        if split is not None:
            page = statistics.median(split[probe.key].requests) * 1000
            sql = statistics.median(split[probe.key].sql) * 1000
        share = "-" if page is None or sql is None else f"{100 * sql / page:.0f}"
        print(f"{probe.label:<44} | {c['n']:>3} {fmt_ms(c['p50']):>7} {fmt_ms(c['p95']):>7} "
              f"{fmt_ms(c['max']):>7} | {w['n']:>3} {fmt_ms(w['p50']):>7} "
              f"{fmt_ms(w['p95']):>7} {fmt_ms(w['max']):>7} | {fmt_ms(page):>6} "
              f"{fmt_ms(sql):>6} {share:>6}")
        table[probe.key] = {"cold": c, "warm": w, "in_process_ms": page, "sql_ms": sql}
    return table


def print_ratios(asked: list[Probe], this: dict[str, Any], against: dict[str, Any]) -> None:
    print(f"\n{'this / against (same run)':<44} | {'cold p50':>9} {'cold p95':>9} | "
          f"{'warm p50':>9} {'warm p95':>9}")
    for probe in asked:
        a, b = this[probe.key], against[probe.key]
        print(f"{probe.label:<44} | " + " ".join(
            f"{a[phase][q] / b[phase][q]:>9.2f}" for phase, q in (("cold", "p50"),
                                                                  ("cold", "p95"))) + " | "
            + " ".join(f"{a['warm'][q] / b['warm'][q]:>9.2f}" for q in ("p50", "p95")))


def print_statements(engine: Engine, key: str, split: Split, *, top: int,
                     full: bool) -> dict[str, Any]:
    """The heaviest statements of one page, each with its plan in brief (``full``: in full)."""
    ordered = sorted(split.statements, key=lambda s: -s.median_ms)
    settings = [s for s in split.statements if s.sql.lstrip().upper().startswith("SET ")]
    print(f"\n{key}: {len(ordered)} statements, {statistics.median(split.sql) * 1000:,.0f} ms "
          f"of SQL in a {statistics.median(split.requests) * 1000:,.0f} ms page (medians of "
          f"{len(split.requests)} in-process requests); the heaviest, with EXPLAIN "
          f"(ANALYZE, BUFFERS) run once more:")
    found = {}
    for statement in [s for s in ordered if s not in settings][:top]:
        plan = explain(engine, statement, settings)
        print(f"  {statement.median_ms:>6,.0f} ms  {statement.what}\n"
              f"{'':>13}{plan_brief(plan)}")
        if full:
            print("\n".join(" " * 13 + row for row in plan))
        found[statement.what] = {"median_ms": statement.median_ms, "plan": plan}
    rest = [s for s in ordered if s.what not in found]
    if rest:
        print(f"  {sum(s.median_ms for s in rest):>6,.0f} ms  the other {len(rest)}: " + "; ".join(
            sorted({s.what for s in rest})))
    return found


def describe_seed(seed: dict[str, Any], made_now: bool, checked: float) -> str:
    counts = seed["counts"]
    what = (f"{counts['tickets']:,} tickets, {counts['surveys']:,} surveys, "
            f"{counts['reply_waits']:,} reply waits, {counts['conversations']:,} conversations, "
            f"{seed['agents']} agents, {seed['customers']:,} customers")
    if made_now:
        print(f"generated {what} in {seed['seed_seconds']} s (COPY {seed['copy_seconds']} s, "
              f"then VACUUM ANALYZE)", flush=True)
    else:
        print(f"reusing {what} (generated in {seed['seed_seconds']} s; {checked:.1f} s to "
              f"check and vacuum)", flush=True)
    last = date.fromisoformat(seed["last_day"])
    behind = (datetime.now(ZONE).date() - last).days
    if behind > 0:
        print(f"note: the data ends {last} ({behind} days ago); the ranges end there "
              f"(--regenerate for data ending today)")
    return what


def print_legend(what: str, days: int, last: date, figures: dict[str, Any],
                 blocks: dict[str, list[int]], checkouts: list[Checkout]) -> None:
    print(f"\nreports over {what}")
    print(f"{days}-day range {last - timedelta(days=days - 1)}..{last}: " + ", ".join(
        f"{k} {figures[k]['value']}" + (f" (n={figures[k]['n']:,})" if figures[k]["n"] else "")
        for k in ("tickets", "csat", "sla_first_response", "breached_now") if k in figures))
    print("cold = the first request of a range not asked before, in a freshly started desk "
          "process; PostgreSQL keeps running and the\nOS page cache is not dropped. Blocks "
          "PostgreSQL fetched from outside shared_buffers (OS cache or disk): " + ", ".join(
              f"{phase} phase {read:,} ({read * 8 / 1024:,.0f} MB; {hit:,} hits)"
              for phase, (read, hit) in blocks.items()) + ".")
    print("warm = the same ranges again (ending on the data's last day), every endpoint in "
          "turn. in-process: the desk app of this\ncheckout in this process (no HTTP), median "
          "ms of the page and the sum of its SQL statements (sent until their rows are in;\n"
          "above the page's time when it runs statements at once).")
    if len(checkouts) > 1:
        print(f"this = {checkouts[0].root}, against = {checkouts[1].root}: same database, "
              f"their requests alternating (cold rounds: who goes first alternates).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url",
                        default=os.environ.get("KEFU_BENCH_REPORTS_DATABASE_URL")
                        or DEFAULT_DATABASE)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--surveys", type=int, default=300_000)
    parser.add_argument("--conversations", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=30, help="the main range (7 and 90 also)")
    parser.add_argument("--runs", type=int, default=30, help="warm requests per endpoint")
    parser.add_argument("--cold-rounds", type=int, default=6,
                        help="fresh desk processes, each asking every endpoint once")
    parser.add_argument("--sql-runs", type=int, default=5,
                        help="in-process requests per endpoint with every statement timed")
    parser.add_argument("--top", type=int, default=6, help="heaviest statements explained")
    parser.add_argument("--against", type=Path,
                        help="another checkout of Kefu (e.g. a git worktree before a change), "
                             "measured side by side over HTTP")
    parser.add_argument("--changed-days", type=int, default=3, metavar="N",
                        help="days (the data's last N) whose day cells are marked changed, as "
                             "a live shop's are between two rounds of the reports job")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print those plans in full")
    args = parser.parse_args()
    if not 1 <= args.days <= 120 or min(args.runs, args.cold_rounds, args.sql_runs) < 1:
        sys.exit("--days 1..120; --runs, --cold-rounds and --sql-runs at least 1")
    checkouts = [Checkout("this", ROOT)]
    if args.against is not None:
        if not (args.against / "ticketing" / "web" / "__main__.py").is_file():
            sys.exit(f"--against {args.against}: not a checkout of Kefu")
        checkouts.append(Checkout("against", args.against.resolve()))
    BENCH.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # desks are stopped on the way out

    started = time.perf_counter()
    seed, made_now = prepare_database(
        args.database_url, Shape(args.tickets, args.surveys, args.conversations),
        regenerate=args.regenerate)
    what = describe_seed(seed, made_now, time.perf_counter() - started)
    last = date.fromisoformat(seed["last_day"])
    asked = probes(args.days, agent_id=1)  # a frontline agent: the busiest kind
    engine = make_engine(args.database_url)
    try:
        sizes = database_sizes(engine)
        print(f"database {sizes['database'] / 2**20:,.0f} MB (" + ", ".join(
            f"{k} {v / 2**20:,.0f} MB" for k, v in sizes.items() if k != "database")
            + ", each with its indexes)")
        day_cells = prepare_cells(args.database_url, engine, last, args.changed_days)
        print(f"\ncold: {args.cold_rounds} rounds of fresh desk processes, each endpoint once "
              f"per process for a range not asked before", flush=True)
        before = block_stats(engine)
        cold = measure_cold(args.database_url, checkouts, asked, last, args.cold_rounds)
        between = block_stats(engine)
        print(f"warm: {args.runs} rounds over every endpoint, ranges ending {last}", flush=True)
        warm, figures = measure_warm(args.database_url, checkouts, asked, last, args.runs)
        blocks = {"cold": [a - b for a, b in zip(between, before)],
                  "warm": [a - b for a, b in zip(block_stats(engine), between)]}
        print(f"in-process: {args.sql_runs} requests per endpoint, every statement timed",
              flush=True)
        split = sql_split(args.database_url, asked, last, args.sql_runs)

        print_legend(what, args.days, last, figures, blocks, checkouts)
        tables = {c.label: print_table(c.label if len(checkouts) > 1 else "", asked,
                                       cold[c.label], warm[c.label],
                                       split if c.root == ROOT else None)
                  for c in checkouts}
        if len(checkouts) > 1:
            print_ratios(asked, tables["this"], tables["against"])
        for label, table in tables.items():
            main = table.get(f"dashboard_{args.days}")
            if main is not None:
                print(f"{args.days}-day dashboard ({label}): warm p95 {main['warm']['p95']:,.0f} "
                      f"ms, cold p95 {main['cold']['p95']:,.0f} ms: "
                      f"{'under' if main['warm']['p95'] < 500 else 'OVER'} the 500 ms target")
        plans = {key: print_statements(engine, key, split[key], top=args.top, full=args.explain)
                 for key in (f"dashboard_{args.days}", "summary", "drill_csat_low")}
    finally:
        engine.dispose()
    (BENCH / "reports.json").write_text(json.dumps(
        {"seed": seed, "made_now": made_now, "sizes": sizes, "day_cells": day_cells,
         "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                  if k != "database_url"},
         "blocks": blocks, "results": tables,
         "statements": {k: [{"what": s.what, "median_ms": s.median_ms} for s in v.statements]
                        for k, v in split.items()},
         "plans": plans}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
