import base64
from collections.abc import Mapping

import pytest
from sqlalchemy import select

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk.test_sla import CLOCK, H, T0, live, make_ticket
from tests.ticketing.desk.test_timer_index import dead_redis
from ticketing.desk import sla, timer_index, worker
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.errors import ConfigurationError
from ticketing.core.models import (
    Base, Notification, Role, SlaTimer, Ticket, TicketEvent, TicketState, TimerKind, TimerStatus,
)
from ticketing.core.pii import PiiCipher
from ticketing.desk.timer_index import DatabaseDueSource, RedisTimerIndex


class Recorder:
    """A fake handler table: remembers what fired, optionally fails for some timers."""

    def __init__(self, fail_for: set[int] | None = None) -> None:
        self.calls: list[tuple[sla.Action, int, int]] = []
        self.fail_for = fail_for or set()

    def handle(self, session, *, firing: sla.Firing, ticket: Ticket, now) -> None:
        if firing.timer_id in self.fail_for:
            raise RuntimeError("handler exploded")
        assert ticket.id == firing.ticket_id
        self.calls.append((firing.action, firing.timer_id, ticket.id))

    @property
    def table(self) -> Mapping[sla.Action, worker.Handler]:
        return {action: self.handle for action in sla.Action}

    def actions(self) -> list[sla.Action]:
        return [c[0] for c in self.calls]


def one_ticket(make, session):
    ticket = make_ticket(session, make.customer())
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    timers = live(session, ticket)
    session.commit()
    return ticket, timers


def test_round_fires_warning_then_breach_once_each(make, session, session_factory) -> None:
    ticket, timers = one_ticket(make, session)
    first = timers[TimerKind.FIRST_RESPONSE]
    rec, source = Recorder(), DatabaseDueSource(session_factory)

    report = worker.run_once(session_factory, due_source=source, handlers=rec.table, now=T0 + 20 * H)
    assert report.fired == {"warning": 1} and rec.calls == [(sla.Action.WARNING, first.id, ticket.id)]
    again = worker.run_once(session_factory, due_source=source, handlers=rec.table, now=T0 + 20 * H)
    assert again.candidates == 0 and len(rec.calls) == 1

    worker.run_once(session_factory, due_source=source, handlers=rec.table, now=T0 + 24 * H)
    assert rec.actions() == [sla.Action.WARNING, sla.Action.BREACH]
    worker.run_once(session_factory, due_source=source, handlers=rec.table, now=T0 + 100 * H)
    # the resolution timer was overdue too: its warning is skipped, one breach only
    assert rec.actions() == [sla.Action.WARNING, sla.Action.BREACH, sla.Action.BREACH]
    assert rec.calls[-1][1] == timers[TimerKind.RESOLUTION].id


def test_aftercare_timers_reach_their_handlers(make, session, session_factory) -> None:
    ticket = make_ticket(session, make.customer())
    sla.on_solved(session, ticket=ticket, now=T0, config=CLOCK)
    session.commit()
    rec = Recorder()
    report = worker.run_once(session_factory, due_source=DatabaseDueSource(session_factory),
                             handlers=rec.table, now=T0 + 30 * H)
    assert report.fired == {"csat_reminder": 1, "followup": 1}
    assert rec.actions() == [sla.Action.CSAT_REMINDER, sla.Action.FOLLOWUP]  # soonest first


def test_failed_handler_rolls_back_and_retries(make, session, session_factory) -> None:
    ticket, timers = one_ticket(make, session)
    first = timers[TimerKind.FIRST_RESPONSE]
    source = DatabaseDueSource(session_factory)
    failing = Recorder(fail_for={first.id})
    report = worker.run_once(session_factory, due_source=source, handlers=failing.table, now=T0 + 20 * H)
    assert report.failed == 1 and report.total_fired == 0
    with session_factory() as s:
        assert s.get(SlaTimer, first.id).warned_at is None  # the firing was rolled back too
    rec = Recorder()
    worker.run_once(session_factory, due_source=source, handlers=rec.table, now=T0 + 20 * H)
    assert rec.calls == [(sla.Action.WARNING, first.id, ticket.id)]


def test_a_handler_table_must_be_complete(session_factory) -> None:
    with pytest.raises(ConfigurationError):
        worker.run_once(session_factory, due_source=DatabaseDueSource(session_factory),
                        handlers={sla.Action.WARNING: Recorder().handle}, now=T0)


def test_stale_redis_entries_are_confirmed_and_repaired(make, session, session_factory, redis_client) -> None:
    index = RedisTimerIndex(redis_client, key="test:due")
    ticket, timers = one_ticket(make, session)
    first, resolution = timers[TimerKind.FIRST_RESPONSE], timers[TimerKind.RESOLUTION]
    # the index is wrong both ways: a due-looking entry for a timer now due later, and one for
    # a timer that no longer exists
    index.apply({resolution.id: T0, 424242: T0, first.id: first.fire_at})
    rec = Recorder()
    report = worker.run_once(session_factory, due_source=index, handlers=rec.table, now=T0 + 20 * H)
    assert report.candidates == 3 and rec.calls == [(sla.Action.WARNING, first.id, ticket.id)]
    assert redis_client.zscore(index.key, str(resolution.id)) == resolution.fire_at.timestamp()
    assert redis_client.zscore(index.key, "424242") is None


def test_without_redis_the_database_answers(make, session, session_factory) -> None:
    ticket, timers = one_ticket(make, session)
    rec = Recorder()
    report = worker.run_once(session_factory, due_source=RedisTimerIndex(dead_redis()),
                             handlers=rec.table, now=T0 + 20 * H)
    assert report.source == "database"
    assert rec.calls == [(sla.Action.WARNING, timers[TimerKind.FIRST_RESPONSE].id, ticket.id)]


def test_worker_rebuilds_a_lost_index_before_firing(make, session, session_factory, redis_client) -> None:
    index = RedisTimerIndex(redis_client, key="test:due")
    uninstall = timer_index.install(session_factory, index)
    try:
        ticket, timers = one_ticket(make, session)
        redis_client.flushdb()  # Redis restarted empty
        rec = Recorder()
        loop = worker.Worker(session_factory, index=index, handlers=rec.table, clock=lambda: T0 + 20 * H)
        report = loop.step()
        assert index.is_built() and report.source == "redis"
        assert rec.calls == [(sla.Action.WARNING, timers[TimerKind.FIRST_RESPONSE].id, ticket.id)]
        # the worker's own commit moved the entry to the deadline
        first = timers[TimerKind.FIRST_RESPONSE]
        assert redis_client.zscore(index.key, str(first.id)) == (T0 + 24 * H).timestamp()
    finally:
        uninstall()


def test_stop_ends_the_loop(session_factory) -> None:
    loop = worker.Worker(session_factory, index=None, handlers=Recorder().table, interval=0)
    loop.stop()
    loop.run()  # returns at once instead of looping
    assert loop.stopping.is_set()


# --- default handlers, with the real escalation and notification services ----------------------
def test_breach_escalates_and_warning_notifies_the_owner(make, session, session_factory) -> None:
    frontline, specialists = make.team(code="frontline", tier=1), make.team(code="aftersales", tier=2)
    owner = make.agent(team=frontline)
    helper = make.agent(team=specialists)
    ticket = make_ticket(session, make.customer(), owner_id=owner.id, team_id=frontline.id)
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    session.commit()
    source = DatabaseDueSource(session_factory)

    worker.run_once(session_factory, due_source=source, now=T0 + 20 * H)
    worker.run_once(session_factory, due_source=source, now=T0 + 25 * H)
    with session_factory() as s:
        t = s.get(Ticket, ticket.id)
        assert t.tier == 2 and t.assignee_id == helper.id and t.owner_id == owner.id
        escalated = s.scalars(select(TicketEvent).where(TicketEvent.kind == "escalated")).one()
        assert escalated.data["source"] == "sla"
        kinds = [n.kind for n in s.scalars(select(Notification).where(Notification.agent_id == owner.id)
                                           .order_by(Notification.id))]
        assert kinds == ["sla_warning", "escalated", "sla_breach"]
        warning = s.scalars(select(Notification).where(Notification.kind == "sla_warning")).one()
        assert ticket.number in warning.text_en and "first response" in warning.text_en
        assert "首次响应" in warning.text_zh


def test_unowned_ticket_warns_its_team_supervisors(make, session, session_factory) -> None:
    team = make.team(code="frontline", tier=1)
    boss = make.agent(team=team, role=Role.SUPERVISOR)
    make.agent(team=team)  # a plain agent is not told
    ticket = make_ticket(session, make.customer(), team_id=team.id)
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    session.commit()
    worker.run_once(session_factory, due_source=DatabaseDueSource(session_factory), now=T0 + 20 * H)
    with session_factory() as s:
        notes = s.scalars(select(Notification)).all()
        assert [(n.agent_id, n.kind) for n in notes] == [(boss.id, "sla_warning")]


def test_module_entry_point_runs_one_round(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        ticket = make_ticket(s, customer, state=TicketState.SOLVED)
        sla.on_solved(s, ticket=ticket, now=T0, config=CLOCK)  # follow-up and reminder long due
    monkeypatch.setenv("KEFU_DATABASE_URL", url)
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    monkeypatch.setenv("KEFU_PII_KEY", base64.b64encode(TEST_KEY).decode())
    assert worker.main(["--once"]) == 0
    with factory() as s:
        assert set(s.scalars(select(SlaTimer.status))) == {TimerStatus.DONE}
    engine.dispose()


@pytest.mark.parametrize(("setting", "dispatched"), [(None, True), ("off", False)])
def test_module_entry_point_dispatches_unless_turned_off(setting, dispatched, tmp_path,
                                                         monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        agent = make.agent(team=make.team(code="frontline", tier=1))
        ticket_id = make_ticket(s, make.customer(), state=TicketState.NEW).id  # created long ago
    monkeypatch.setenv("KEFU_DATABASE_URL", url)
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    monkeypatch.setenv("KEFU_PII_KEY", base64.b64encode(TEST_KEY).decode())
    if setting is None:
        monkeypatch.delenv("KEFU_AUTO_ASSIGN_AFTER", raising=False)
    else:
        monkeypatch.setenv("KEFU_AUTO_ASSIGN_AFTER", setting)
    assert worker.main(["--once"]) == 0
    with factory() as s:
        assert s.get(Ticket, ticket_id).owner_id == (agent.id if dispatched else None)
    engine.dispose()
