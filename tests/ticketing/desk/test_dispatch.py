"""Automatic dispatch (rules §DISP-1): the worker hands unclaimed tickets to a free agent."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from ticketing.desk import dispatch, ownership, routing, tickets, worker
from ticketing.core.errors import ConfigurationError
from ticketing.core.models import (
    Availability, Notification, Priority, Role, Ticket, TicketEvent, TicketState,
)
from ticketing.core.settings import load_settings, parse_auto_assign_after
from tests.ticketing.desk_setup import NOW, build_desk, events, new_ticket, snapshot

AFTER = timedelta(seconds=600)


def claimed_by(session_factory, ticket_id: int) -> int | None:
    with session_factory() as s:
        return s.get(Ticket, ticket_id).owner_id


# --- routing.auto_assign: who gets the ticket ---------------------------------------------------
def test_auto_assign_notifies_the_agent(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    routing.auto_assign(session, ticket_id=ticket.id, now=NOW)
    [note] = session.scalars(select(Notification).where(Notification.agent_id == ticket.owner_id))
    assert (note.kind, note.ticket_id) == ("assigned", ticket.id)
    assert ticket.number in note.text_en and ticket.number in note.text_zh
    assert ticket.owner_id in (desk.l1.id, desk.l1b.id)


def test_the_previous_owner_of_the_same_order_is_preferred(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer)
    earlier = new_ticket(session, make, customer=customer, order_id=order.id)
    ownership.claim(session, ticket_id=earlier.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=earlier.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    tickets.close(session, ticket_id=earlier.id, actor_id=desk.l1.id, now=NOW)
    busy = new_ticket(session, make)  # l1 is now busier than l1b
    ownership.claim(session, ticket_id=busy.id, agent_id=desk.l1.id, now=NOW)

    again = new_ticket(session, make, customer=customer, order_id=order.id)
    other_order = new_ticket(session, make, customer=customer, order_id=make.order(customer=customer).id)
    routing.auto_assign(session, ticket_id=again.id, now=NOW)
    routing.auto_assign(session, ticket_id=other_order.id, now=NOW)
    assert again.owner_id == desk.l1.id  # first-contact ownership beats load
    assert other_order.owner_id == desk.l1b.id  # a different order: least loaded
    note = session.scalars(select(Notification).where(
        Notification.agent_id == desk.l1.id, Notification.ticket_id == again.id)).one()
    assert "same order" in note.text_en


def test_an_unavailable_previous_owner_is_passed_over(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer)
    earlier = new_ticket(session, make, customer=customer, order_id=order.id)
    ownership.claim(session, ticket_id=earlier.id, agent_id=desk.l1.id, now=NOW)
    desk.l1.availability = Availability.AWAY
    session.flush()
    again = new_ticket(session, make, customer=customer, order_id=order.id)
    routing.auto_assign(session, ticket_id=again.id, now=NOW)
    assert again.owner_id == desk.l1b.id


def test_a_previous_owner_below_the_tickets_tier_is_passed_over(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer)
    earlier = new_ticket(session, make, customer=customer, order_id=order.id)
    ownership.claim(session, ticket_id=earlier.id, agent_id=desk.l1.id, now=NOW)
    again = new_ticket(session, make, customer=customer, order_id=order.id)
    again.tier = 2  # e.g. escalated by an SLA breach while nobody had claimed it
    session.flush()
    routing.auto_assign(session, ticket_id=again.id, now=NOW)
    assert again.owner_id == desk.l2.id


# --- dispatch.run_once: when, in which order, and what is left -----------------------------------
def test_a_ticket_waits_the_delay_before_dispatch(session, make, session_factory) -> None:
    build_desk(make)
    ticket = new_ticket(session, make)
    session.commit()
    early = dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER - timedelta(seconds=1))
    assert early.candidates == 0 and claimed_by(session_factory, ticket.id) is None
    due = dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER)
    assert (due.candidates, due.dispatched) == (1, 1)
    assert claimed_by(session_factory, ticket.id) is not None
    with session_factory() as s:
        [claimed] = events(s, ticket, "claimed")
        assert claimed.data["source"] == "auto"


def test_zero_delay_dispatches_at_once_and_negative_is_refused(session, make, session_factory) -> None:
    build_desk(make)
    ticket = new_ticket(session, make)
    session.commit()
    with pytest.raises(ConfigurationError):
        dispatch.run_once(session_factory, after=timedelta(seconds=-1), now=NOW)
    assert claimed_by(session_factory, ticket.id) is None
    assert dispatch.run_once(session_factory, after=timedelta(0), now=NOW).dispatched == 1


def test_urgent_first_then_by_priority_then_oldest(session, make, session_factory) -> None:
    build_desk(make)
    made = {}
    for minute, name, priority in [(0, "normal-old", Priority.NORMAL), (1, "low", Priority.LOW),
                                   (2, "high", Priority.HIGH), (3, "normal-new", Priority.NORMAL),
                                   (4, "urgent", Priority.URGENT)]:
        ticket = new_ticket(session, make, now=NOW + timedelta(minutes=minute))
        ticket.priority = priority
        made[ticket.id] = name
    session.commit()
    report = dispatch.run_once(session_factory, after=AFTER, now=NOW + timedelta(hours=1))
    assert report.dispatched == 5
    with session_factory() as s:
        order = s.scalars(select(TicketEvent.ticket_id).where(TicketEvent.kind == "claimed")
                          .order_by(TicketEvent.id))
        assert [made[i] for i in order] == ["urgent", "high", "normal-old", "normal-new", "low"]


def test_nobody_free_leaves_tickets_in_the_queue(session, make, session_factory) -> None:
    desk = build_desk(make)
    for agent in (desk.l1, desk.l1b):
        agent.availability = Availability.OFFLINE
    ids = [new_ticket(session, make).id, new_ticket(session, make).id]
    session.commit()
    before = snapshot(session)
    session.rollback()  # SQLite: release the write lock the snapshot's transaction holds
    report = dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER)
    assert (report.candidates, report.dispatched, report.undispatched) == (2, 0, 2)
    with session_factory() as s:
        assert {s.get(Ticket, i).state for i in ids} == {TicketState.NEW}
    assert snapshot(session) == before


def test_a_full_agent_is_skipped_and_a_higher_tier_is_not_borrowed(session, make, session_factory) -> None:
    desk = build_desk(make)
    desk.l1b.availability = Availability.OFFLINE
    desk.l1.max_open_tickets = 1
    tickets_ = [new_ticket(session, make) for _ in range(3)]
    session.commit()
    report = dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER)
    assert (report.dispatched, report.undispatched) == (1, 2)
    owners = [claimed_by(session_factory, t.id) for t in tickets_]
    assert owners == [desk.l1.id, None, None]  # not l2, l3 or the supervisor


def test_manual_claims_come_first(session, make, session_factory) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1b.id, now=NOW)
    session.commit()
    report = dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER)
    assert report.candidates == 0 and claimed_by(session_factory, ticket.id) == desk.l1b.id


def test_drain_pages_past_tickets_nobody_can_take(session, make, session_factory) -> None:
    """Three urgent tier-3 tickets nobody can take do not starve the tier-1 one behind them."""
    desk = build_desk(make)
    desk.l3.availability = Availability.OFFLINE
    stuck = [new_ticket(session, make) for _ in range(3)]
    for ticket in stuck:
        ticket.tier, ticket.priority = 3, Priority.URGENT
    behind = new_ticket(session, make, now=NOW + timedelta(minutes=1))
    session.commit()
    one_page = dispatch.run_once(session_factory, after=AFTER, now=NOW + timedelta(hours=1), limit=2)
    assert (one_page.dispatched, one_page.undispatched) == (0, 2)
    report = dispatch.drain(session_factory, after=AFTER, now=NOW + timedelta(hours=1), batch=2)
    assert (report.candidates, report.dispatched, report.undispatched) == (4, 1, 3)
    assert claimed_by(session_factory, behind.id) in (desk.l1.id, desk.l1b.id)


# --- the worker loop and its configuration ------------------------------------------------------
def test_worker_step_dispatches_and_reports(session, make, session_factory) -> None:
    desk = build_desk(make)
    desk.l1b.availability = Availability.OFFLINE
    desk.l1.max_open_tickets = 1
    new_ticket(session, make)
    new_ticket(session, make)
    session.commit()
    loop = worker.Worker(session_factory, index=None, clock=lambda: NOW + AFTER)
    report = loop.step()
    assert (report.dispatch.dispatched, report.dispatch.undispatched) == (1, 1)
    off = worker.Worker(session_factory, index=None, clock=lambda: NOW + AFTER,
                        auto_assign_after=None)
    assert off.step().dispatch.candidates == 0


@pytest.mark.parametrize(("raw", "seconds"), [
    (None, 600.0), ("", 600.0), ("0", 0.0), ("90", 90.0), ("off", None), ("OFF", None),
    ("-1", None),
])
def test_auto_assign_after_setting(raw, seconds) -> None:
    assert parse_auto_assign_after(raw) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "nan", "inf"])
def test_bad_auto_assign_after_is_a_clear_error(bad, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KEFU_VAR_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError):
        load_settings({"KEFU_AUTO_ASSIGN_AFTER": bad})
    assert load_settings({"KEFU_AUTO_ASSIGN_AFTER": "30"}).auto_assign_after_seconds == 30.0


# --- PostgreSQL: the indexed query, and racing workers -----------------------------------------
@pytest.mark.postgres_only
def test_the_waiting_query_uses_the_state_index(pg_engine) -> None:
    query = dispatch.waiting(after=AFTER, now=NOW, limit=50)
    compiled = query.compile(pg_engine, compile_kwargs={"literal_binds": True})
    with pg_engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_tickets_state" in plan, plan


@pytest.mark.postgres_only
def test_racing_workers_assign_each_ticket_exactly_once(pg_engine, session, make, session_factory) -> None:
    team = make.team(code="frontline", tier=1, categories=["*"])
    agents = [make.agent(team=team) for _ in range(4)]  # 4 × 20 slots for 50 tickets
    boss = make.agent(team=make.team(code="supervisors", tier=2, categories=[]), role=Role.SUPERVISOR)
    made = [new_ticket(session, make).id for _ in range(50)]
    session.commit()
    barrier = threading.Barrier(3)
    reports: list[dispatch.DispatchReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(dispatch.run_once(session_factory, after=AFTER, now=NOW + AFTER))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.failed for r in reports) == 0
    assert sum(r.dispatched for r in reports) == 50
    assert sum(r.undispatched for r in reports) == 0
    assert sum(r.dispatched + r.lost for r in reports) == sum(r.candidates for r in reports)
    with session_factory() as s:
        claims = Counter(s.scalars(select(TicketEvent.ticket_id).where(TicketEvent.kind == "claimed")))
        assigned = Counter(s.scalars(select(Notification.ticket_id).where(Notification.kind == "assigned")))
        owners = dict(s.execute(select(Ticket.id, Ticket.owner_id)).all())
    assert set(claims) == set(made) and set(claims.values()) == {1}
    assert set(assigned) == set(made) and set(assigned.values()) == {1}
    assert set(owners.values()) <= {a.id for a in agents} and boss.id not in owners.values()
