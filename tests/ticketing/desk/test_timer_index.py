import logging

import pytest
from sqlalchemy import select, text

from tests.ticketing.desk.test_sla import CLOCK, H, T0, live, make_ticket
from ticketing.desk import sla, timer_index
from ticketing.core.models import SlaTimer, TimerKind, TimerStatus
from ticketing.desk.timer_index import DatabaseDueSource, FullScanDueSource, RedisTimerIndex


def scheduled_tickets(make, session, count: int) -> list:
    customer = make.customer()
    tickets = []
    for i in range(count):
        ticket = make_ticket(session, customer)
        sla.start_ticket_timers(session, ticket=ticket, now=T0 + i * H, config=CLOCK)
        tickets.append(ticket)
    return tickets


@pytest.fixture
def index(redis_client) -> RedisTimerIndex:
    return RedisTimerIndex(redis_client, key="test:due")


@pytest.fixture
def synced(session_factory, index):
    uninstall = timer_index.install(session_factory, index)
    yield index
    uninstall()


def dead_redis():
    """A client for a port nobody listens on, without retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def score(index: RedisTimerIndex, timer_id: int) -> float | None:
    return index.client.zscore(index.key, str(timer_id))


# --- database sources --------------------------------------------------------------------------
def test_database_source_lists_active_due_timers_soonest_first(make, session, session_factory) -> None:
    tickets = scheduled_tickets(make, session, 4)
    sla.pause(session, ticket=tickets[0], now=T0 + H, config=CLOCK)  # paused: never due
    now = T0 + 3 * H + 24 * H * 0.8  # first-response warnings of tickets 1..3 are due
    expected = [live(session, t)[TimerKind.FIRST_RESPONSE].id for t in tickets[1:]]
    session.commit()  # (on SQLite an open transaction would hold the write lock)
    source = DatabaseDueSource(session_factory)
    assert source.due(now=now, limit=10) == expected
    assert source.due(now=now, limit=2) == expected[:2]
    assert FullScanDueSource(session_factory).due(now=now, limit=10) == expected
    assert source.due(now=T0, limit=10) == []


def test_indexed_query_uses_the_due_index_and_full_scan_cannot(pg_engine, session_factory) -> None:
    with pg_engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plans = {}
        for source in (DatabaseDueSource(session_factory), FullScanDueSource(session_factory)):
            query = str(_compiled_due_query(source, pg_engine))
            plans[source.name] = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + query)))
    assert "ix_sla_timers_due" in plans["database"] and "Index Cond" in plans["database"]
    assert "Index Cond" not in plans["full scan"]


def _compiled_due_query(source, engine):
    """Capture the SQL a source sends, with literals bound, for EXPLAIN."""
    from sqlalchemy import event

    captured = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        captured.append(context.compiled.construct_params())
        captured.append(context.compiled.statement)

    event.listen(engine, "before_cursor_execute", grab)
    try:
        source.due(now=T0, limit=10)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return captured[-1].compile(engine, compile_kwargs={"literal_binds": True})


# --- Redis index -------------------------------------------------------------------------------
def test_commits_add_move_and_remove_index_entries(make, session, session_factory, synced) -> None:
    ticket = scheduled_tickets(make, session, 1)[0]
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    assert score(synced, first.id) is None  # not committed yet
    session.commit()
    assert score(synced, first.id) == first.fire_at.timestamp()

    sla.pause(session, ticket=ticket, now=T0 + H, config=CLOCK)
    session.commit()
    assert score(synced, first.id) is None
    sla.resume(session, ticket=ticket, now=T0 + 2 * H, config=CLOCK)
    session.commit()
    assert score(synced, first.id) == first.fire_at.timestamp()

    sla.on_agent_response(session, ticket=ticket, now=T0 + 3 * H)
    session.commit()
    assert score(synced, first.id) is None
    assert synced.size() == 1  # the resolution timer


def test_rollback_leaves_no_trace(make, session, synced) -> None:
    scheduled_tickets(make, session, 2)
    session.rollback()
    assert synced.size() == 0


def test_compare_and_set_firing_moves_the_entry(make, session, session_factory, synced) -> None:
    ticket = scheduled_tickets(make, session, 1)[0]
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    session.commit()
    with session_factory.begin() as s:
        assert sla.fire(s, timer_id=first.id, now=T0 + 20 * H).action is sla.Action.WARNING
    assert score(synced, first.id) == (T0 + 24 * H).timestamp()
    with session_factory.begin() as s:
        assert sla.fire(s, timer_id=first.id, now=T0 + 25 * H).action is sla.Action.BREACH
    assert score(synced, first.id) is None


def test_redis_failure_never_breaks_a_commit(make, session, session_factory, caplog) -> None:
    dead = RedisTimerIndex(dead_redis())
    uninstall = timer_index.install(session_factory, dead)
    try:
        ticket = scheduled_tickets(make, session, 1)[0]
        with caplog.at_level(logging.WARNING, logger="ticketing.desk.timer_index"):
            session.commit()
    finally:
        uninstall()
    assert "timer index update failed" in caplog.text
    session.expire_all()
    assert len(live(session, ticket)) == 2


def test_due_lists_members_up_to_now(index) -> None:
    index.apply({1: T0, 2: T0 + H, 3: T0 + 2 * H, 4: None})
    assert index.due(now=T0 + H, limit=10) == [1, 2]
    assert index.due(now=T0 + 5 * H, limit=2) == [1, 2]


def test_rebuild_restores_a_lost_index(make, session, session_factory, index) -> None:
    tickets = scheduled_tickets(make, session, 3)
    sla.on_closed(session, ticket=tickets[0], now=T0 + H)
    active = session.scalars(select(SlaTimer).where(SlaTimer.status == TimerStatus.ACTIVE)).all()
    session.commit()
    assert not index.is_built()
    assert index.rebuild(session_factory, batch=2) == 4
    assert index.is_built()
    assert {int(m): s for m, s in index.client.zrange(index.key, 0, -1, withscores=True)} == {
        t.id: t.fire_at.timestamp() for t in active}
    index.client.flushdb()
    assert not index.is_built()


def test_repair_fixes_scores_and_drops_only_stale_due_entries(index) -> None:
    index.apply({1: T0, 2: T0, 3: T0 + 10 * H})
    # 1 moved to later, 2 stopped, 3 reported stale but its entry already has a future score
    index.repair([(1, T0 + 5 * H), (2, None), (3, None)], now=T0 + H)
    assert score(index, 1) == (T0 + 5 * H).timestamp()
    assert score(index, 2) is None
    assert score(index, 3) == (T0 + 10 * H).timestamp()
