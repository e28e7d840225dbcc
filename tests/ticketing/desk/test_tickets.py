"""Ticket creation and the loop of rules §LOOP-1 (ticketing.desk.tickets)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ticketing.core import errors
from ticketing.desk import ownership, tickets
from ticketing.core.models import (
    Category,
    Channel,
    Notification,
    OrderState,
    OutboxMessage,
    Priority,
    Segment,
    SlaTimer,
    Survey,
    TicketMessage,
    TicketState,
    TimerKind,
    TimerStatus,
)
from tests.ticketing.desk_setup import NOW, build_desk, events, new_ticket, snapshot

TRANSCRIPT = [
    {"author_type": "customer", "body": "我的快递三天了还没收到", "at": NOW - timedelta(minutes=3)},
    {"author_type": "bot", "body": "您的包裹在深圳转运中心。", "at": NOW - timedelta(minutes=2)},
    {"author_type": "customer", "body": "转人工", "at": (NOW - timedelta(minutes=1)).isoformat()},
]


def claimed_ticket(session, make, desk, **kwargs):
    ticket = new_ticket(session, make, **kwargs)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    return ticket


def solved_ticket(session, make, desk, *, at=NOW, **kwargs):
    ticket = claimed_ticket(session, make, desk, **kwargs)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已补发", now=at)
    return ticket


# --- creation --------------------------------------------------------------------------------
def test_bot_handoff_creates_a_classified_ticket_with_its_transcript(session, make) -> None:
    customer = make.customer()
    ticket = tickets.create_ticket(
        session, customer_id=customer.id, subject="转人工", channel="telegram",
        conversation_id="tg-42", transcript=TRANSCRIPT, now=NOW,
    )
    assert re.fullmatch(r"T20260302\d{6}", ticket.number)
    assert ticket.state is TicketState.NEW and ticket.owner_id is None
    assert ticket.category is Category.LOGISTICS
    assert ticket.priority is Priority.NORMAL and ticket.tier == 1
    assert ticket.channel is Channel.TELEGRAM
    messages = session.scalars(select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
                               .order_by(TicketMessage.id)).all()
    assert [(m.author_type, m.body) for m in messages] == [
        (t["author_type"], t["body"]) for t in TRANSCRIPT
    ]
    assert messages[0].at == NOW - timedelta(minutes=3)
    [created] = events(session, ticket)
    assert (created.kind, created.actor_type, created.to_value) == ("created", "bot", "new")
    assert created.data["category"] == "logistics"
    timers = {t.kind for t in session.scalars(
        select(SlaTimer).where(SlaTimer.ticket_id == ticket.id))}
    assert timers == {TimerKind.FIRST_RESPONSE, TimerKind.RESOLUTION}


def test_numbers_are_unique_and_carry_the_shanghai_date(session, make) -> None:
    late_utc = datetime(2026, 3, 1, 20, 0, tzinfo=timezone.utc)  # 04:00 on 2 March in Shanghai
    a = new_ticket(session, make, now=late_utc)
    b = new_ticket(session, make, now=late_utc)
    assert a.number != b.number
    assert a.number == f"T20260302{a.id:06d}"
    assert tickets.ticket_number(1234567, NOW) == "T202603021234567"


def test_given_category_wins_and_vip_threat_starts_higher(session, make) -> None:
    vip = make.customer(segment=Segment.VIP)
    ticket = new_ticket(session, make, customer=vip, subject="再不处理我就去12315投诉，急！",
                        category="quality")
    assert ticket.category is Category.QUALITY
    assert ticket.priority is Priority.URGENT
    assert ticket.tier == 2
    assert "threat" in ticket.flags


def test_fraud_report_starts_at_operations(session, make) -> None:
    ticket = new_ticket(session, make, subject="I think this is a scam, my card was stolen")
    assert ticket.tier == 3 and ticket.priority is Priority.URGENT and "fraud" in ticket.flags


def test_agent_created_desk_ticket_is_owned_by_its_creator(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject="电话来电：发票问题",
                                   channel=Channel.DESK, created_by_agent_id=desk.l1.id, now=NOW)
    assert ticket.state is TicketState.OPEN and ticket.owner_id == desk.l1.id
    assert ticket.claimed_at == NOW and ticket.category is Category.PAYMENT
    assert [(e.kind, e.actor_type, e.actor_id) for e in events(session, ticket)] == [
        ("created", "agent", desk.l1.id), ("claimed", "agent", desk.l1.id)]


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": "  "},
        {"channel": "fax"},
        {"category": "weather"},
        {"transcript": [{"author_type": "agent", "body": "hi"}]},
        {"transcript": [{"author_type": "customer", "body": ""}]},
        {"transcript": [{"author_type": "customer", "body": "x", "at": datetime(2026, 1, 1)}]},
        {"created_by_agent_id": 999999},
        {"customer_id": 999999},
        {"order_id": "other"},
    ],
)
def test_bad_input_is_refused_before_anything_is_written(session, make, bad) -> None:
    customer = make.customer()
    other_order = make.order(customer=make.customer())
    args = {"customer_id": customer.id, "subject": "快递没到", "channel": "telegram"}
    args.update(bad)
    if args.get("order_id") == "other":
        args["order_id"] = other_order.id
    before = snapshot(session)
    with pytest.raises(errors.KefuError) as info:
        tickets.create_ticket(session, now=NOW, **args)
    assert isinstance(info.value, (errors.ValidationError, errors.NotFound))
    assert snapshot(session) == before


# --- dedupe / first-contact ownership of later contacts -----------------------------------------
def test_dedupe_appends_to_the_open_ticket_about_the_same_order(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    first = claimed_ticket(session, make, desk, customer=customer, order_id=order.id)
    again = tickets.create_ticket(
        session, customer_id=customer.id, subject="还是没到", channel="telegram", order_id=order.id,
        transcript=[{"author_type": "customer", "body": "还是没到啊"}], dedupe=True,
        now=NOW + timedelta(hours=2),
    )
    assert again.id == first.id and again.owner_id == desk.l1.id
    assert first.messages[-1].body == "还是没到啊"
    notes = session.scalars(select(Notification).where(Notification.agent_id == desk.l1.id)).all()
    assert [n.kind for n in notes] == ["customer_message"]
    assert "还是没到啊" in notes[0].text_zh

    other_order = make.order(customer=customer, state=OrderState.SHIPPED)
    other = new_ticket(session, make, customer=customer, order_id=other_order.id, dedupe=True)
    assert other.id != first.id


def test_dedupe_from_another_channel_moves_the_replies_there(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    first = claimed_ticket(session, make, desk, customer=customer)
    again = tickets.create_ticket(
        session, customer_id=customer.id, subject="还在等", channel="widget",
        conversation_id="widget:c-9", text="还在等回复", dedupe=True, now=NOW + timedelta(hours=1))
    assert again.id == first.id and again.conversation_id == "widget:c-9"


def test_dedupe_reopens_a_recently_solved_ticket_to_its_owner(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer)
    solved = solved_ticket(session, make, desk, customer=customer, order_id=order.id)
    again = new_ticket(session, make, customer=customer, order_id=order.id, dedupe=True,
                       now=NOW + timedelta(days=6))
    assert again.id == solved.id
    assert again.state is TicketState.OPEN and again.owner_id == desk.l1.id
    assert again.reopen_count == 1
    assert [e.kind for e in events(session, again)][-1] == "reopened"


def test_dedupe_ignores_tickets_solved_long_ago_or_closed(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order = make.order(customer=customer)
    old = solved_ticket(session, make, desk, customer=customer, order_id=order.id)
    fresh = new_ticket(session, make, customer=customer, order_id=order.id, dedupe=True,
                       now=NOW + timedelta(days=8))
    assert fresh.id != old.id and fresh.state is TicketState.NEW
    tickets.close(session, ticket_id=old.id, actor_type="system", now=NOW + timedelta(days=8))
    assert ownership.route_contact(session, customer_id=customer.id, order_id=order.id,
                                   now=NOW + timedelta(days=8)).id == fresh.id


# --- transitions -----------------------------------------------------------------------------
def test_the_whole_loop_is_recorded(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="请提供照片",
                        now=NOW + timedelta(minutes=5))
    tickets.wait_for_customer(session, ticket_id=ticket.id, agent_id=desk.l1.id,
                              reason="等待照片", now=NOW + timedelta(minutes=6))
    assert ticket.state is TicketState.WAITING_CUSTOMER
    tickets.add_customer_message(session, ticket_id=ticket.id, body="照片发你了",
                                 now=NOW + timedelta(hours=1))
    assert ticket.state is TicketState.OPEN
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已补发新耳机",
                  now=NOW + timedelta(hours=2))
    tickets.close(session, ticket_id=ticket.id, actor_id=desk.l1.id, now=NOW + timedelta(days=3))
    assert ticket.state is TicketState.CLOSED and ticket.closed_at == NOW + timedelta(days=3)
    trail = [(e.kind, e.from_value, e.to_value) for e in events(session, ticket)
             if e.kind not in ("csat_sent",)]
    assert trail == [
        ("created", None, "new"),
        ("claimed", "new", "open"),
        ("state_changed", "open", "waiting_customer"),
        ("state_changed", "waiting_customer", "open"),
        ("solved", "open", "solved"),
        ("closed", "solved", "closed"),
    ]
    wait = events(session, ticket, "state_changed")[0]
    assert (wait.actor_type, wait.actor_id, wait.reason) == ("agent", desk.l1.id, "等待照片")


def test_waiting_pauses_and_customer_reply_resumes_the_sla(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    tickets.wait_for_customer(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    resolution = session.scalars(select(SlaTimer).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.kind == TimerKind.RESOLUTION)).one()
    assert resolution.status is TimerStatus.PAUSED
    tickets.add_customer_message(session, ticket_id=ticket.id, body="好的",
                                 now=NOW + timedelta(hours=5))
    assert resolution.status is TimerStatus.ACTIVE


@pytest.mark.parametrize(
    ("setup", "to"),
    [
        ("new", TicketState.OPEN),  # only claiming opens a new ticket
        ("new", TicketState.SOLVED),
        ("new", TicketState.CLOSED),
        ("open", TicketState.CLOSED),
        ("open", TicketState.NEW),
        ("solved", TicketState.WAITING_CUSTOMER),
        ("closed", TicketState.OPEN),
        ("closed", TicketState.SOLVED),
    ],
)
def test_illegal_transitions_write_nothing(session, make, setup, to) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    if setup != "new":
        ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    if setup in ("solved", "closed"):
        tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    if setup == "closed":
        tickets.close(session, ticket_id=ticket.id, actor_id=desk.l1.id, now=NOW)
    before = snapshot(session, ticket)
    with pytest.raises(errors.IllegalTransition):
        tickets.transition(session, ticket=ticket, to=to, actor_type="agent",
                           actor_id=desk.l1.id, now=NOW)
    assert snapshot(session, ticket) == before


# --- replies ---------------------------------------------------------------------------------
def test_owner_reply_goes_to_the_outbox_and_meets_first_response(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="您好，我来处理",
                        now=NOW + timedelta(minutes=10))
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="已联系快递",
                        now=NOW + timedelta(minutes=20))
    assert ticket.first_response_at == NOW + timedelta(minutes=10)
    sent = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(m.kind, m.text, m.conversation_id) for m in sent] == [
        ("agent_reply", "您好，我来处理", ticket.conversation_id),
        ("agent_reply", "已联系快递", ticket.conversation_id),
    ]
    assert sent[0].payload["agent"] == desk.l1.first_name
    first = session.scalars(select(SlaTimer).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.kind == TimerKind.FIRST_RESPONSE)).one()
    assert first.status is TimerStatus.DONE


def test_internal_notes_stay_inside(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    note = tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id,
                               body="客户很着急", internal=True, now=NOW)
    assert note.internal and ticket.first_response_at is None
    assert session.scalars(select(OutboxMessage)).all() == []


def test_supervisor_may_reply_but_another_agent_may_not(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    before = snapshot(session, ticket)
    with pytest.raises(errors.PermissionDenied):
        tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1b.id, body="hi", now=NOW)
    with pytest.raises(errors.ValidationError):
        tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body=" ", now=NOW)
    with pytest.raises(errors.TicketNotFound):
        tickets.agent_reply(session, ticket_id=999999, agent_id=desk.l1.id, body="hi", now=NOW)
    assert snapshot(session, ticket) == before
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.supervisor.id, body="主管介入",
                        now=NOW)


def test_unclaimed_ticket_cannot_be_answered_by_a_plain_agent(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    with pytest.raises(errors.PermissionDenied):
        tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="hi", now=NOW)


def test_customer_message_notifies_owner_and_owes_a_reply(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="在查", now=NOW)
    message = tickets.add_customer_message(session, ticket_id=ticket.id, body="查到了吗？",
                                           now=NOW + timedelta(hours=1))
    assert (message.author_type, message.author_id) == ("customer", ticket.customer_id)
    [note] = session.scalars(select(Notification)).all()
    assert (note.agent_id, note.kind, note.ticket_id) == (desk.l1.id, "customer_message", ticket.id)
    assert ticket.number in note.text_en and "查到了吗" in note.text_en
    owed = session.scalars(select(SlaTimer).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.kind == TimerKind.NEXT_RESPONSE)).one()
    assert owed.status is TimerStatus.ACTIVE


def test_customer_message_on_unclaimed_ticket_notifies_nobody(session, make) -> None:
    ticket = new_ticket(session, make)
    tickets.add_customer_message(session, ticket_id=ticket.id, body="有人吗", now=NOW)
    assert ticket.state is TicketState.NEW
    assert session.scalars(select(Notification)).all() == []


def test_customer_message_reopens_a_recently_solved_ticket_to_its_owner(session, make) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    tickets.add_customer_message(session, ticket_id=ticket.id, body="还是坏的",
                                 now=NOW + timedelta(days=2))
    assert ticket.state is TicketState.OPEN and ticket.owner_id == desk.l1.id
    assert ticket.reopen_count == 1 and ticket.solved_at is None
    reopened = events(session, ticket, "reopened")[0]
    assert (reopened.actor_type, reopened.actor_id) == ("customer", ticket.customer_id)
    kinds = [n.kind for n in session.scalars(select(Notification).order_by(Notification.id))]
    assert kinds == ["reopened", "customer_message"]


@pytest.mark.parametrize("close_it", [False, True])
def test_customer_message_on_old_or_closed_ticket_is_refused(session, make, close_it) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    if close_it:
        tickets.close(session, ticket_id=ticket.id, actor_id=desk.l1.id, now=NOW)
    later = NOW + (timedelta(hours=1) if close_it else timedelta(days=8))
    before = snapshot(session, ticket)
    with pytest.raises(errors.IllegalTransition):
        tickets.add_customer_message(session, ticket_id=ticket.id, body="在吗", now=later)
    assert snapshot(session, ticket) == before


# --- solve, reopen, close ---------------------------------------------------------------------
def test_solve_reports_back_and_starts_aftercare(session, make) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已补发",
                  now=NOW + timedelta(hours=3))
    assert ticket.state is TicketState.SOLVED and ticket.resolution == "已补发"
    assert ticket.solved_at == NOW + timedelta(hours=3)
    kinds = [m.kind for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert kinds == ["notice", "csat_request"]
    notice = session.scalars(select(OutboxMessage)).first()
    assert "已补发" in notice.text and ticket.number in notice.text
    survey = session.scalars(select(Survey)).one()
    assert survey.agent_id == desk.l1.id
    live = {t.kind for t in session.scalars(select(SlaTimer).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.status == TimerStatus.ACTIVE))}
    assert TimerKind.FOLLOWUP in live and TimerKind.RESOLUTION not in live


@pytest.mark.parametrize(("who", "resolution", "error"), [
    ("l1", "  ", errors.ValidationError),
    ("l1b", "done", errors.PermissionDenied),
    ("nobody", "done", errors.AgentNotFound),
])
def test_solve_refusals_write_nothing(session, make, who, resolution, error) -> None:
    desk = build_desk(make)
    ticket = claimed_ticket(session, make, desk)
    agent_id = 999999 if who == "nobody" else getattr(desk, who).id
    before = snapshot(session, ticket)
    with pytest.raises(error):
        tickets.solve(session, ticket_id=ticket.id, agent_id=agent_id, resolution=resolution,
                      now=NOW)
    assert snapshot(session, ticket) == before


def test_solving_a_new_ticket_is_illegal_even_for_a_supervisor(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    before = snapshot(session, ticket)
    with pytest.raises(errors.IllegalTransition):
        tickets.solve(session, ticket_id=ticket.id, agent_id=desk.supervisor.id,
                      resolution="done", now=NOW)
    assert snapshot(session, ticket) == before


def test_reopen_by_supervisor_goes_back_to_the_owner(session, make) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    tickets.reopen(session, ticket_id=ticket.id, actor_type="agent", actor_id=desk.supervisor.id,
                   reason="客户来电说没解决", now=NOW + timedelta(days=1))
    assert ticket.state is TicketState.OPEN and ticket.owner_id == desk.l1.id
    [note] = session.scalars(select(Notification)).all()
    assert (note.agent_id, note.kind) == (desk.l1.id, "reopened")
    # solving again is allowed and does not send a second survey
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="退款完成",
                  now=NOW + timedelta(days=2))
    assert len(session.scalars(select(Survey)).all()) == 1


@pytest.mark.parametrize(("actor_type", "actor", "reason", "error"), [
    ("agent", "l1b", "why", errors.PermissionDenied),
    ("agent", "l1", "", errors.ValidationError),
    ("customer", "stranger", "not fixed", errors.ValidationError),
    ("robot", None, "x", errors.ValidationError),
])
def test_reopen_refusals_write_nothing(session, make, actor_type, actor, reason, error) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    if actor is None:
        actor_id = None
    elif actor == "stranger":
        actor_id = make.customer().id
    else:
        actor_id = getattr(desk, actor).id
    before = snapshot(session, ticket)
    with pytest.raises(error):
        tickets.reopen(session, ticket_id=ticket.id, actor_type=actor_type, actor_id=actor_id,
                       reason=reason, now=NOW)
    assert snapshot(session, ticket) == before


def test_customer_cannot_reopen_after_the_window(session, make) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    with pytest.raises(errors.IllegalTransition):
        tickets.reopen(session, ticket_id=ticket.id, actor_type="customer",
                       actor_id=ticket.customer_id, reason="没解决", now=NOW + timedelta(days=8))
    tickets.reopen(session, ticket_id=ticket.id, actor_type="customer", actor_id=ticket.customer_id,
                   reason="没解决", now=NOW + timedelta(days=1))
    assert ticket.state is TicketState.OPEN


def test_close_permissions(session, make) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    before = snapshot(session, ticket)
    with pytest.raises(errors.PermissionDenied):
        tickets.close(session, ticket_id=ticket.id, actor_id=desk.l1b.id, now=NOW)
    with pytest.raises(errors.ValidationError):
        tickets.close(session, ticket_id=ticket.id, actor_type="agent", actor_id=None, now=NOW)
    assert snapshot(session, ticket) == before
    tickets.close(session, ticket_id=ticket.id, actor_type="system", reason="no reply in 7 days",
                  now=NOW + timedelta(days=7))
    assert ticket.state is TicketState.CLOSED
    live = session.scalars(select(SlaTimer).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.status != TimerStatus.DONE)).all()
    assert live == []


def test_a_longer_reopen_window_is_honoured_end_to_end(session, make) -> None:
    desk = build_desk(make)
    ticket = solved_ticket(session, make, desk)
    tickets.add_customer_message(session, ticket_id=ticket.id, body="还是不行",
                                 reopen_window=timedelta(days=30), now=NOW + timedelta(days=20))
    assert ticket.state is TicketState.OPEN and ticket.reopen_count == 1
