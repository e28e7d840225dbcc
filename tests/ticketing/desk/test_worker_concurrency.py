"""Several workers racing over the same due timers: every timer fires exactly once.

Real threads on PostgreSQL, each with its own sessions (and its own Redis client in the
Redis variant); the side effect is a row written in the firing transaction, so a double
firing would show up as two rows, and a lost one as none.
"""

import threading
from collections import Counter

import pytest
from sqlalchemy import insert, select

from tests.ticketing.desk.test_sla import H, T0, make_ticket
from ticketing.desk import sla, timer_index, worker
from ticketing.core.models import SlaTimer, TicketEvent, TimerKind, TimerStatus
from ticketing.desk.timer_index import DatabaseDueSource, RedisTimerIndex

TICKETS = 150  # two due timers each: 300 firings
WORKERS = 4
NOW = T0 + 30 * H


def side_effect(session, *, firing: sla.Firing, ticket, now) -> None:
    session.execute(insert(TicketEvent).values(
        ticket_id=ticket.id, at=now, kind="test_fired", actor_type="system",
        data={"timer_id": firing.timer_id, "action": firing.action.value}))


HANDLERS = {action: side_effect for action in sla.Action}


def seed(make, session) -> list[int]:
    """Per ticket a RESOLUTION timer due for its warning and a FOLLOWUP due now."""
    customer = make.customer()
    for _ in range(TICKETS):
        ticket = make_ticket(session, customer)
        session.add_all([
            SlaTimer(ticket_id=ticket.id, kind=TimerKind.RESOLUTION, status=TimerStatus.ACTIVE,
                     started_at=T0, warn_at=T0 + 20 * H, fire_at=T0 + 20 * H, deadline_at=T0 + 72 * H),
            SlaTimer(ticket_id=ticket.id, kind=TimerKind.FOLLOWUP, status=TimerStatus.ACTIVE,
                     started_at=T0, fire_at=T0 + 24 * H, deadline_at=T0 + 24 * H),
        ])
    session.flush()
    ids = list(session.scalars(select(SlaTimer.id)))
    session.commit()
    return ids


def race(session_factory, make_source) -> list[worker.RunReport]:
    barrier = threading.Barrier(WORKERS)
    reports: list[worker.RunReport] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            source = make_source()
            barrier.wait()
            while True:  # small batches so the workers keep colliding on the same timers
                report = worker.run_once(session_factory, due_source=source, handlers=HANDLERS,
                                         now=NOW, limit=25)
                with lock:
                    reports.append(report)
                if report.candidates == 0:
                    return
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return reports


def assert_each_fired_once(session_factory, timer_ids: list[int], reports) -> None:
    with session_factory() as s:
        effects = Counter(e.data["timer_id"] for e in s.scalars(
            select(TicketEvent).where(TicketEvent.kind == "test_fired")))
        statuses = dict(s.execute(select(SlaTimer.kind, SlaTimer.status)).all())
    failed = sum(r.failed for r in reports)
    assert failed == 0, f"{failed} firings raised (see the log)"
    assert set(effects) == set(timer_ids), f"never fired: {sorted(set(timer_ids) - set(effects))[:10]}"
    assert max(effects.values()) == 1, f"fired twice: {[t for t, c in effects.items() if c > 1][:10]}"
    assert sum(r.total_fired for r in reports) == len(timer_ids)
    assert statuses[TimerKind.FOLLOWUP] is TimerStatus.DONE


@pytest.mark.postgres_only
def test_database_workers_fire_each_timer_once(pg_engine, make, session, session_factory) -> None:
    timer_ids = seed(make, session)
    reports = race(session_factory, lambda: DatabaseDueSource(session_factory))
    assert_each_fired_once(session_factory, timer_ids, reports)


@pytest.mark.postgres_only
@pytest.mark.redis
def test_redis_indexed_workers_fire_each_timer_once(pg_engine, make, session, session_factory,
                                                    redis_client) -> None:
    import redis

    url = redis_client.connection_pool.connection_kwargs
    key = "test:due"
    timer_ids = seed(make, session)
    RedisTimerIndex(redis_client, key=key).rebuild(session_factory)
    clients = []

    def make_source() -> RedisTimerIndex:
        client = redis.Redis(host=url["host"], port=url["port"], db=url["db"], decode_responses=True)
        clients.append(client)
        index = RedisTimerIndex(client, key=key)
        return index

    # every worker keeps the index in sync with its own commits, as in production
    shared = RedisTimerIndex(redis_client, key=key)
    uninstall = timer_index.install(session_factory, shared)
    try:
        reports = race(session_factory, make_source)
    finally:
        uninstall()
        for client in clients:
            client.close()
    assert_each_fired_once(session_factory, timer_ids, reports)
    assert redis_client.zcount(key, "-inf", NOW.timestamp()) == 0  # nothing left that looks due
