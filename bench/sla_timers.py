"""How fast is "what is due now?" with a million open tickets, and how fast is the desk loop?

Creates N open tickets with two SLA timers each (first response, resolution), about 1 % of
them due now, then times the worker's question three ways, median of several runs:

  (a) Redis sorted-set index   ZRANGEBYSCORE (O(log n))
  (b) full database scan       the same query made unable to use an index
  (c) indexed database query   status='active' AND fire_at <= now ORDER BY fire_at LIMIT n

and finally claim + reply + resolve throughput over a thousand fresh tickets, through the
real services. It writes only to the database it is given; ``--reset`` drops and recreates
every table first (refused unless given, when the database has tickets).

    python bench/sla_timers.py --database-url postgresql+psycopg://…/kefu_bench \\
        --redis-url redis://127.0.0.1:6379/9 --n 1000000 --reset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from ticketing.desk import timer_index  # noqa: E402
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.models import Base, Customer, SlaTimer, Ticket  # noqa: E402

TICKET_COLUMNS = ("id", "number", "customer_id", "channel", "category", "priority", "tier", "state",
                  "subject", "language", "flags", "created_at", "reopen_count", "version")
TIMER_COLUMNS = ("id", "ticket_id", "kind", "generation", "status", "started_at", "deadline_at",
                 "warn_at", "fire_at")
CUSTOMERS = 1000


def ticket_rows(n: int, now: datetime, due_every: int) -> Iterator[tuple[tuple, tuple, tuple]]:
    """(ticket, first-response timer, resolution timer) rows; every ``due_every``-th is due."""
    for i in range(1, n + 1):
        if i % due_every == 0:  # created ~23 hours ago: the first-response warning is overdue
            created = now - timedelta(hours=23, milliseconds=i)  # distinct: LIMIT has no ties
        else:  # created within the last ~19 hours: nothing due yet
            created = now - timedelta(seconds=(i * 7919) % (19 * 3600))
        ticket = (i, f"B{i:012d}", 1 + i % CUSTOMERS, "widget", "logistics", "normal", 1, "open",
                  "bench ticket", "zh", "[]", created, 0, 1)
        first = (2 * i - 1, i, "first_response", 1, "active", created, created + timedelta(hours=24),
                 created + timedelta(hours=19.2), created + timedelta(hours=19.2))
        resolution = (2 * i, i, "resolution", 1, "active", created, created + timedelta(hours=72),
                      created + timedelta(hours=57.6), created + timedelta(hours=57.6))
        yield ticket, first, resolution


def load_postgres(engine: Engine, n: int, now: datetime, due_every: int) -> None:
    """COPY is the fast path: ~10x executemany on PostgreSQL."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            with cur.copy(f"COPY tickets ({', '.join(TICKET_COLUMNS)}) FROM STDIN") as copy:
                for ticket, _, _ in ticket_rows(n, now, due_every):
                    copy.write_row(ticket)
            with cur.copy(f"COPY sla_timers ({', '.join(TIMER_COLUMNS)}) FROM STDIN") as copy:
                for _, first, resolution in ticket_rows(n, now, due_every):
                    copy.write_row(first)
                    copy.write_row(resolution)
            for table in ("tickets", "sla_timers"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE tickets")
            cur.execute("VACUUM ANALYZE sla_timers")
        conn.autocommit = False
    finally:
        raw.close()


def load_generic(engine: Engine, n: int, now: datetime, due_every: int, chunk: int = 20_000) -> None:
    """executemany in chunks (SQLite and anything else)."""
    tickets, timers = [], []

    def flush(conn) -> None:
        conn.execute(insert(Ticket.__table__), tickets)
        conn.execute(insert(SlaTimer.__table__), timers)
        tickets.clear()
        timers.clear()

    with engine.begin() as conn:
        for ticket, first, resolution in ticket_rows(n, now, due_every):
            row = dict(zip(TICKET_COLUMNS, ticket))
            row["flags"] = []
            tickets.append(row)
            timers.append(dict(zip(TIMER_COLUMNS, first)))
            timers.append(dict(zip(TIMER_COLUMNS, resolution)))
            if len(tickets) >= chunk:
                flush(conn)
        if tickets:
            flush(conn)
        conn.execute(text("ANALYZE"))


def prepare(engine: Engine, factory: sessionmaker[Session], *, n: int, reset: bool, now: datetime,
            due_every: int) -> None:
    if reset:
        Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with factory() as session:
        if session.scalar(select(func.count()).select_from(Ticket)):
            sys.exit("the database already has tickets: use a benchmark database and --reset")
    with factory.begin() as session:  # customers need no PII for this benchmark
        session.execute(insert(Customer.__table__),
                        [{"id": i, "name": f"bench{i}", "language": "zh", "segment": "regular",
                          "created_at": now} for i in range(1, CUSTOMERS + 1)])
    if engine.dialect.name == "postgresql":
        engine.dispose()
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), :n)"), {"n": CUSTOMERS})
        load_postgres(engine, n, now, due_every)
    else:
        load_generic(engine, n, now, due_every)


def timed(fn: Callable[[], object], runs: int) -> tuple[list[float], object]:
    fn()  # warm caches and connections: we measure steady state
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


def bench_due(sources: list[timer_index.DueSource], *, now: datetime, limit: int, runs: int) -> list[dict]:
    results, reference = [], None
    for source in sources:
        samples, ids = timed(lambda: source.due(now=now, limit=limit), runs)
        assert isinstance(ids, list)
        if reference is None:
            reference = sorted(ids)
        results.append({"source": source.name, "median_ms": statistics.median(samples),
                        "min_ms": min(samples), "max_ms": max(samples), "returned": len(ids),
                        "same_answer": sorted(ids) == reference})
    return results


def bench_desk_loop(factory: sessionmaker[Session], count: int) -> dict[str, float] | None:
    """claim + reply + resolve through the real services, one transaction per step."""
    try:
        from ticketing.desk import ownership, tickets
        from ticketing.core.models import Agent, Availability, Role, Team
    except ImportError:
        return None
    with factory.begin() as session:
        team = Team(code=f"bench{time.time_ns()}", name_zh="基准", name_en="bench", tier=1, categories=["*"])
        session.add(team)
        session.flush()
        agent = Agent(login=f"bench{time.time_ns()}", display_name="Bench", first_name="Bench",
                      role=Role.AGENT, team_id=team.id, availability=Availability.ONLINE,
                      max_open_tickets=10**6)
        session.add(agent)
        session.flush()
        agent_id = agent.id
    ids: list[int] = []
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[Session, int], object]) -> None:
        start = time.perf_counter()
        for i in range(count):
            with factory.begin() as session:
                fn(session, i)
        timings[name] = count / (time.perf_counter() - start)

    def create(session: Session, i: int) -> None:
        ids.append(tickets.create_ticket(session, customer_id=1 + i % CUSTOMERS, subject="快递没到",
                                         channel="widget", text="我的快递三天了还没到").id)

    step("create", create)
    step("claim", lambda s, i: ownership.claim(s, ticket_id=ids[i], agent_id=agent_id))
    step("reply", lambda s, i: tickets.agent_reply(s, ticket_id=ids[i], agent_id=agent_id,
                                                   body="已为您催促快递，请稍候。"))
    step("resolve", lambda s, i: tickets.solve(s, ticket_id=ids[i], agent_id=agent_id,
                                               resolution="快递已送达"))
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("KEFU_BENCH_DATABASE_URL")
                        or f"sqlite:///{Path('var/bench-sla.db').resolve()}")
    parser.add_argument("--redis-url", default=os.environ.get("KEFU_BENCH_REDIS_URL"))
    parser.add_argument("--n", type=int, help="open tickets (default 1,000,000 on PostgreSQL, 100,000 else)")
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=1000, help="timers per 'what is due' batch")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--throughput", type=int, default=1000, help="tickets for claim/reply/resolve")
    parser.add_argument("--reset", action="store_true", help="drop and recreate all tables first")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)

    engine = make_engine(args.database_url)
    factory = make_session_factory(engine)
    is_pg = engine.dialect.name == "postgresql"
    n = args.n or (1_000_000 if is_pg else 100_000)
    now = datetime.now(timezone.utc)
    due_every = max(1, round(100 / args.due_percent))
    print(f"# {n:,} open tickets, {2 * n:,} timers, {n // due_every:,} due, on {engine.dialect.name}")

    started = time.perf_counter()
    prepare(engine, factory, n=n, reset=args.reset, now=now, due_every=due_every)
    load_s = time.perf_counter() - started
    print(f"load: {load_s:.1f} s")

    sources: list[timer_index.DueSource] = []
    rebuild_s = None
    index = None
    if args.redis_url:
        import redis

        index = timer_index.RedisTimerIndex(redis.Redis.from_url(args.redis_url, decode_responses=True),
                                            key="kefu:bench:due")
        index.clear()
        started = time.perf_counter()
        index.rebuild(factory, batch=50_000)
        rebuild_s = time.perf_counter() - started
        print(f"Redis index rebuilt from the database: {index.size():,} entries in {rebuild_s:.1f} s")
        sources.append(index)
    sources += [timer_index.FullScanDueSource(factory), timer_index.DatabaseDueSource(factory)]
    due = bench_due(sources, now=now, limit=args.limit, runs=args.runs)
    print(f"\n'what is due now' (LIMIT {args.limit}), median of {args.runs} runs")
    print(f"{'source':<16}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'returned':>10}  same answer")
    for row in due:
        print(f"{row['source']:<16}{row['median_ms']:>11.2f}{row['min_ms']:>9.2f}{row['max_ms']:>9.2f}"
              f"{row['returned']:>10}  {row['same_answer']}")

    if index is not None:
        timer_index.install(factory, index)  # the desk's commits keep the index in sync
    loop = bench_desk_loop(factory, args.throughput) if args.throughput else None
    if loop is None and args.throughput:
        print("\nclaim/reply/resolve: services not available")
    elif loop is not None:
        print(f"\ndesk loop over {args.throughput} tickets (one transaction per step), per second:")
        for name, rate in loop.items():
            print(f"  {name:<8}{rate:>8.1f}")
    if args.json:
        print(json.dumps({"n": n, "backend": engine.dialect.name, "load_s": load_s, "rebuild_s": rebuild_s,
                          "due": due, "desk_loop_per_s": loop}, indent=2))
    if index is not None:
        index.clear()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
