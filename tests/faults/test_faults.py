"""Issue 13 §3, faults with nothing lost: the production layout under load, hit by every fault.

``scripts/run_cluster.py`` starts 2 gateways, 2 Rasa + 2 action servers, 2 SLA workers, a
webhook sender, a desk and the alerts job on PostgreSQL and Redis. 50 verified customers (widget
visitors linked to demo buyers, as ``bench/gateway_load.py`` does) chat at once in Chinese,
English and both, each alternating between the two gateways' widget WebSockets; every tenth
asks for a person early, so tickets (and their SLA timers, on a 1/2-minute policy so they come
due during the run) exist while the faults happen. In turn:

1. ``kill -9`` gateway-0, rasa-0, actions-1 and worker-0, each started again by the supervisor
   and ready before the next fault;
2. the cluster's Redis (a private ``redis-server`` on a free port, never the shared one) is
   killed and started again, empty: Rasa's trackers and locks, the turn locks, the timer
   index and the pub/sub wake-ups start from nothing;
3. PostgreSQL becomes unavailable for ~5 s. The shared server is never stopped: the cluster's
   own database refuses connections (``ALTER DATABASE … ALLOW_CONNECTIONS false``) and every
   backend connected to it is ended (``pg_terminate_backend``), then it is allowed again. For
   the processes that is a database stop and start: every connection dropped, new ones
   refused.

Then every message is looked up (``counts.py``): sent, stored, answered (or apologised for with
a ticket), delivered once and in order; every SLA timer due fired exactly once. The table of
counts is printed and written to ``tests/artifacts/faults.json``.

Skipped without KEFU_TEST_DATABASE_URL (PostgreSQL), KEFU_TEST_REDIS_URL and a trained model.
``make test-faults`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import aiohttp
import pytest
import sqlalchemy
from sqlalchemy import func, select

from bot.rasa_config import ROOT
from tests.faults import counts
from tests.faults.cluster import Cluster
from tests.faults.customer import Customer
from ticketing.core.clock import utcnow
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import (
    InboundMessage, Order, OutboxMessage, Priority, Segment, SlaPolicyRow, SlaTimer, TimerStatus,
)
from ticketing.shop import customers as shop_customers

PG_URL = os.environ.get("KEFU_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
MODEL = ROOT / "models" / "kefu.tar.gz"
ARTIFACT = ROOT / "tests" / "artifacts" / "faults.json"

CONVERSATIONS = 50
MAX_TURNS = 200  # bounded: the load runs until the faults are over, never longer than this
WARM_UP, SETTLE, TAIL = 20.0, 6.0, 8.0  # seconds of load before, between and after faults
MIN_LOAD = 150.0  # seconds of load at least, so first-response and resolution timers come due
TIMER_GRACE = 15.0  # a timer this late at the end was skipped
ZH = ["你好", "退货政策是什么", "充电宝还有货吗", "我的订单到哪了", "谢谢"]
EN = ["hello", "what is your return policy", "is the power bank in stock", "where is my order",
      "thanks"]
HANDOFF = {"zh": "转人工", "en": "i want to talk to a human"}

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not (PG_URL and PG_URL.startswith("postgresql") and REDIS_URL),
                       reason="needs PostgreSQL and Redis (KEFU_TEST_DATABASE_URL, "
                       "KEFU_TEST_REDIS_URL)"),
    pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)"),
]


@pytest.fixture(scope="module")
def database_url() -> str:
    assert PG_URL is not None
    url = sqlalchemy.engine.make_url(PG_URL)
    name = f"kefu_faults_{os.getpid()}"
    admin = sqlalchemy.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Cluster:
    running = Cluster(tmp_path_factory.mktemp("faults"), database_url, env_extra={
        "KEFU_AUTO_ASSIGN_AFTER": "off",  # tickets stay unclaimed: their timers run out
        "KEFU_RATE_LIMIT_PER_MINUTE": "0",  # a test customer types faster than a person
        "KEFU_WORKER_INTERVAL": "1",
        "KEFU_REPLAY_INTERVAL": "2",
    })
    yield running
    running.stop()


def _visitor(k: int) -> str:
    return f"v-fault-{k:06d}"


def _prepare(factory, conversations: int) -> None:
    """Customers verified as demo buyers; a short SLA policy so timers come due in the run."""
    with factory.begin() as session:
        buyers = session.scalars(select(Order.customer_id).group_by(Order.customer_id)
                                 .having(func.count() >= 2).order_by(Order.customer_id)).all()
        for k in range(conversations):
            shop_customers.link_identity(session, channel="widget", external_id=_visitor(k),
                                         customer_id=buyers[k % len(buyers)], method="demo")
        session.execute(sqlalchemy.delete(SlaPolicyRow))
        for priority in Priority:
            for segment in Segment:
                session.add(SlaPolicyRow(priority=priority.value, segment=segment.value,
                                         first_response_minutes=1, next_response_minutes=1,
                                         resolution_minutes=2))


def _script(k: int, n: int) -> tuple[str, str]:
    """Turn ``n`` of conversation ``k``: (text, language); zh, en or both by turns."""
    language = ("zh", "en", "zh" if n % 2 else "en")[k % 3]
    if k % 10 == 0 and n == 2:
        return HANDOFF[language], language
    lines = ZH if language == "zh" else EN
    return lines[(n + k) % len(lines)], language


async def _load(cluster: Cluster, factory, stopping: threading.Event,
                customers_out: list[Customer], finished: threading.Event) -> None:
    rng = random.Random(13)

    def routed(key: str) -> str | None:
        try:
            with factory() as session:
                row = session.execute(select(InboundMessage.route, InboundMessage.handled_at)
                                      .where(InboundMessage.channel == "widget",
                                             InboundMessage.dedupe_key == key)).first()
        except sqlalchemy.exc.SQLAlchemyError:  # the outage: the customer keeps waiting
            return None
        return row.route if row is not None and row.handled_at is not None else None

    async def routed_async(key: str) -> str | None:
        return await asyncio.to_thread(routed, key)

    urls = [cluster.gateway(0), cluster.gateway(1)]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        people = [Customer(_visitor(k), ("zh", "en", "en")[k % 3], urls, routed_async)
                  for k in range(CONVERSATIONS)]
        customers_out.extend(people)

        async def converse(k: int, person: Customer) -> None:
            # each page opens on its own: one slow handshake holds up only its customer
            await person.open(session)
            await asyncio.sleep(rng.uniform(0, 3))
            for n in range(MAX_TURNS):
                if stopping.is_set():
                    return
                text, _language = _script(k, n)
                await person.say(text, gateway=(n + k) % 2)
                await asyncio.sleep(rng.uniform(1.5, 3.5))  # reading, typing

        await asyncio.gather(*(converse(k, p) for k, p in enumerate(people)))
        finished.set()
        # pages stay open (reconnected if a gateway dropped them) until all owed is delivered
        for person in people:
            for i in range(2):
                if person._ws[i] is None:
                    await person._connect(i, deadline=time.monotonic() + 30)
        conversations = [f"widget:{p.visitor}" for p in people]

        def owed() -> int:
            with factory() as s:  # the outage is over by now
                unhandled = s.scalar(select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.conversation_id.in_(conversations),
                    InboundMessage.handled_at.is_(None)))
                undelivered = s.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.conversation_id.in_(conversations),
                    OutboxMessage.delivered_at.is_(None)))
            return int(unhandled or 0) + int(undelivered or 0)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await asyncio.to_thread(owed):
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # the last frames in flight
        await asyncio.gather(*(p.close() for p in people))


def _wait_for_timers(factory, grace: float, timeout: float = 45) -> None:
    """Until no active timer is ``grace`` seconds overdue (the workers fire every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as session:
            late = session.scalar(select(func.count()).select_from(SlaTimer).where(
                SlaTimer.status == TimerStatus.ACTIVE,
                SlaTimer.fire_at < utcnow() - timedelta(seconds=grace)))
        if not late:
            return
        time.sleep(1)


@pytest.mark.timeout(1200)
def test_faults_lose_nothing_answer_once_in_order_and_fire_timers_once(cluster: Cluster) -> None:
    engine = make_engine(cluster.database_url, pool_size=4, max_overflow=8)
    factory = make_session_factory(engine)
    _prepare(factory, CONVERSATIONS)
    since: datetime = utcnow()
    stopping, finished = threading.Event(), threading.Event()
    people: list[Customer] = []
    failure: list[BaseException] = []

    def run_load() -> None:
        try:
            asyncio.run(_load(cluster, factory, stopping, people, finished))
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    loader = threading.Thread(target=run_load, name="fault-load")
    started = time.monotonic()
    loader.start()
    try:
        time.sleep(WARM_UP)
        for name in ("gateway-0", "rasa-0", "actions-1", "worker-0"):
            cluster.kill(name)
            time.sleep(SETTLE)
        cluster.restart_redis()
        time.sleep(SETTLE)
        cluster.database_outage(5.0)
        time.sleep(max(TAIL, MIN_LOAD - (time.monotonic() - started)))
    finally:
        stopping.set()
        loader.join(timeout=400)
    load_seconds = time.monotonic() - started
    assert not failure, failure
    assert not loader.is_alive(), "the load did not finish"
    _wait_for_timers(factory, TIMER_GRACE)

    with factory() as session:
        facts, extra = counts.judge(session, people)
        timer_counts = counts.timers(session, since=since, now=utcnow(), grace=TIMER_GRACE)
    engine.dispose()
    routes = Counter(f.route or "not stored" for f in facts)
    report = counts.Report(
        conversations=len(people), sent=len(facts), stored=sum(f.stored for f in facts),
        answered=sum(f.answered for f in facts), routes=dict(routes),
        lost=sum(f.lost for f in facts), silent=sum(f.silent for f in facts),
        duplicated=sum(f.duplicated for f in facts),
        redelivered_frames=extra.get("redelivered_frames", 0),
        reordered=sum(f.reordered for f in facts),
        undelivered_rows=extra.get("undelivered_rows", 0),
        unavailable_retries=sum(t.unavailable for p in people for t in p.turns),
        reconnects=sum(t.reconnects for p in people for t in p.turns),
        no_handled_frame=sum(t.no_handled_frame for p in people for t in p.turns),
        unconfirmed_resends=sum(t.unconfirmed_resends for p in people for t in p.turns),
        deferred=sum((t.route or "").startswith("deferred") for p in people for t in p.turns),
        rows=counts.table(facts, cluster.faults), timers=timer_counts)
    text = counts.render(report)
    print(f"\nfault suite: {len(people)} conversations, {len(facts)} turns in "
          f"{load_seconds:.0f} s of load\n{text}")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps({
        "load_seconds": round(load_seconds, 1),
        "redelivered": [{"id": i, "at_gateway": t} for i, t in extra.get("redelivered", [])],
        "no_handled_frame_turns": [  # routed, yet no handled frame 25 s on: for diagnosis
            {"visitor": p.visitor, "client_id": t.client_id, "gateway": t.gateway,
             "route": t.route, "sent_at": round(t.sent - started, 1),
             "seconds": round(t.done - t.sent, 1)}
            for p in people for t in p.turns if t.no_handled_frame],
        "faults": [{"name": f.name, "seconds": round(f.ended - f.started, 1), **f.notes}
                   for f in cluster.faults],
        **report.as_json()}, indent=2, ensure_ascii=False))

    assert len(people) == CONVERSATIONS and len(cluster.faults) == 6
    assert report.lost == 0, _examples(facts, "lost", people, cluster, started)
    assert report.silent == 0, _examples(facts, "silent", people, cluster, started)
    assert report.duplicated == 0, _examples(facts, "duplicated", people, cluster, started)
    assert report.reordered == 0, _examples(facts, "reordered", people, cluster, started)
    assert report.undelivered_rows == 0
    # the same row sent twice happens only where a gateway died between sending a frame and
    # recording the delivery (at least once, deduplicated by id in the page)
    kills = [f for f in cluster.faults if f.name.startswith("kill -9 gateway")]
    for entry_id, times in extra.get("redelivered", []):
        assert any(f.started - 1 <= at <= f.ended + 30 for f in kills for at, _gw in times), \
            (entry_id, times, [(f.name, f.started, f.ended) for f in cluster.faults])
    assert report.stored == report.sent
    assert timer_counts.skipped == 0 and timer_counts.doubled == 0, timer_counts
    assert timer_counts.fired > 0, "no SLA timer came due during the run"
    for row in report.rows:  # an answer, an apology with a ticket, or the ticket's thread
        assert row.answered == row.turns_hit, row


def _examples(facts: list[counts.TurnFacts], attribute: str, people: list[Customer],
              cluster: Cluster, started: float) -> str:
    """The first failing turns with what their customer's page went through, for diagnosis."""
    turns = {(p.visitor, t.client_id): (p, t) for p in people for t in p.turns}
    lines = []
    for fact in [f for f in facts if getattr(f, attribute)][:5]:
        person, turn = turns[(fact.visitor, fact.client_id)]
        lines.append(f"{fact}\n  turn: sent at {turn.sent - started:.1f} s via gateway-"
                     f"{turn.gateway}, {turn.attempts} frames, {turn.reconnects} reconnects, "
                     f"{turn.unavailable} unavailable, route {turn.route}, "
                     f"via database {turn.via_database}\n  page errors: {person.errors[-12:]}")
    lines.append("faults: " + ", ".join(f"{f.name} {f.started - started:.1f}-"
                                         f"{f.ended - started:.1f} s" for f in cluster.faults))
    visitors = {fact.visitor for fact in facts if getattr(fact, attribute)}
    for log in sorted((cluster.var / "cluster" / "logs").glob("gateway-*.log")):
        text = log.read_text(errors="replace").splitlines()
        mentions = [line for line in text if any(v in line for v in visitors)][-8:]
        troubles = [line for line in text if "ERROR" in line or "Traceback" in line][-6:]
        lines.append(f"{log.name}: {mentions + troubles}")
    return "\n".join(lines)
