from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.desk import business_hours, sla
from ticketing.core.errors import ValidationError
from ticketing.core.models import (
    Category, Channel, Customer, Priority, Segment, SlaTimer, Ticket, TicketState, TimerKind,
    TimerStatus,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 in Shanghai
H = timedelta(hours=1)
CLOCK = sla.SlaConfig(calendar=business_hours.RoundTheClock())

_numbers = iter(range(1, 10**9))


def make_ticket(session: Session, customer: Customer, *, priority: Priority = Priority.NORMAL,
                state: TicketState = TicketState.OPEN, owner_id: int | None = None,
                team_id: int | None = None) -> Ticket:
    """A bare ticket row (no service logic), for SLA and worker tests."""
    ticket = Ticket(number=f"T{next(_numbers):09d}", customer_id=customer.id, channel=Channel.WIDGET,
                    category=Category.LOGISTICS, priority=priority, state=state, subject="where is it",
                    owner_id=owner_id, team_id=team_id, created_at=T0)
    session.add(ticket)
    session.flush()
    return ticket


def timers(session: Session, ticket: Ticket, kind: TimerKind | None = None) -> list[SlaTimer]:
    query = select(SlaTimer).where(SlaTimer.ticket_id == ticket.id).order_by(SlaTimer.id)
    if kind is not None:
        query = query.where(SlaTimer.kind == kind)
    return list(session.scalars(query))


def live(session: Session, ticket: Ticket) -> dict[TimerKind, SlaTimer]:
    return {t.kind: t for t in timers(session, ticket) if t.status is not TimerStatus.DONE}


@pytest.fixture
def ticket(make, session) -> Ticket:
    return make_ticket(session, make.customer())


# --- policies ----------------------------------------------------------------------------------
@pytest.mark.parametrize("priority, first, resolution", [
    (Priority.LOW, 48, 120), (Priority.NORMAL, 24, 72), (Priority.HIGH, 8, 48), (Priority.URGENT, 2, 24),
])
def test_policy_table(priority: Priority, first: int, resolution: int) -> None:
    policy = sla.policy_for(priority=priority, segment=Segment.REGULAR)
    assert (policy.first_response, policy.resolution) == (first * H, resolution * H)
    vip = sla.policy_for(priority=priority.value, segment="vip")
    assert (vip.first_response, vip.resolution) == (first * H / 2, resolution * H / 2)
    assert vip.vip and not policy.vip


def test_spec_default_is_normal_24h_72h() -> None:
    policy = sla.policy_for(priority="normal", segment=None)
    assert policy.first_response == 24 * H and policy.next_response == 24 * H
    assert policy.resolution == 72 * H


def test_unknown_priority_is_refused() -> None:
    with pytest.raises(ValidationError):
        sla.policy_for(priority="whenever", segment=None)


# --- lifecycle ---------------------------------------------------------------------------------
def test_new_ticket_gets_first_response_and_resolution_timers(session, ticket) -> None:
    started = sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    by_kind = {t.kind: t for t in started}
    first, resolution = by_kind[TimerKind.FIRST_RESPONSE], by_kind[TimerKind.RESOLUTION]
    assert first.deadline_at == T0 + 24 * H and resolution.deadline_at == T0 + 72 * H
    assert first.warn_at == T0 + 24 * H * 0.8 and first.fire_at == first.warn_at
    assert resolution.fire_at == T0 + 72 * H * 0.8
    assert {t.status for t in started} == {TimerStatus.ACTIVE}
    assert sla.start_ticket_timers(session, ticket=ticket, now=T0 + H, config=CLOCK) == []
    assert len(timers(session, ticket)) == 2


def test_vip_urgent_ticket_gets_an_hour(make, session) -> None:
    ticket = make_ticket(session, make.customer(segment=Segment.VIP), priority=Priority.URGENT)
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    assert live(session, ticket)[TimerKind.FIRST_RESPONSE].deadline_at == T0 + H


def test_business_hours_stretch_the_deadline(session, ticket) -> None:
    shop = sla.SlaConfig(calendar=business_hours.parse("mon-sat 09:00-21:00", "Asia/Shanghai"))
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=shop)
    # 24 opening hours from Monday 10:00 (12h/day) = Wednesday 10:00 Shanghai
    assert live(session, ticket)[TimerKind.FIRST_RESPONSE].deadline_at == T0 + 48 * H


def test_calendar_comes_from_the_settings_the_session_carries(session, ticket) -> None:
    from ticketing.core.settings import SCHEDULE_KEY, load_schedule

    session.info[SCHEDULE_KEY] = load_schedule(
        {"KEFU_BUSINESS_HOURS": "mon-sat 09:00-21:00", "KEFU_TIMEZONE": "Asia/Shanghai"})
    sla.start_ticket_timers(session, ticket=ticket, now=T0)
    assert live(session, ticket)[TimerKind.FIRST_RESPONSE].deadline_at == T0 + 48 * H


def test_agent_response_meets_first_response_only(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    done = sla.on_agent_response(session, ticket=ticket, now=T0 + H)
    assert [t.kind for t in done] == [TimerKind.FIRST_RESPONSE]
    assert done[0].completed_at == T0 + H and done[0].fire_at is None and done[0].breached_at is None
    assert set(live(session, ticket)) == {TimerKind.RESOLUTION}


def test_customer_message_owes_a_next_response_once(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    assert sla.on_customer_message(session, ticket=ticket, now=T0 + H, config=CLOCK) is None  # first still owed
    sla.on_agent_response(session, ticket=ticket, now=T0 + 2 * H)
    first = sla.on_customer_message(session, ticket=ticket, now=T0 + 3 * H, config=CLOCK)
    assert first is not None and first.kind is TimerKind.NEXT_RESPONSE and first.generation == 1
    assert first.deadline_at == T0 + 27 * H
    assert sla.on_customer_message(session, ticket=ticket, now=T0 + 4 * H, config=CLOCK) is None
    sla.on_agent_response(session, ticket=ticket, now=T0 + 5 * H)
    second = sla.on_customer_message(session, ticket=ticket, now=T0 + 6 * H, config=CLOCK)
    assert second is not None and second.generation == 2
    assert [t.status for t in timers(session, ticket, TimerKind.NEXT_RESPONSE)] == [
        TimerStatus.DONE, TimerStatus.ACTIVE]


def test_customer_message_on_solved_ticket_is_left_to_reopen(session, ticket) -> None:
    ticket.state = TicketState.SOLVED
    assert sla.on_customer_message(session, ticket=ticket, now=T0, config=CLOCK) is None
    assert timers(session, ticket) == []


def test_pause_keeps_remaining_time_and_resume_recomputes(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    sla.on_agent_response(session, ticket=ticket, now=T0 + H)
    paused = sla.pause(session, ticket=ticket, now=T0 + 10 * H, config=CLOCK)
    assert [t.kind for t in paused] == [TimerKind.RESOLUTION]
    resolution = paused[0]
    assert resolution.status is TimerStatus.PAUSED and resolution.fire_at is None
    assert resolution.remaining_seconds == 62 * 3600
    assert sla.next_deadline(session, ticket=ticket) is None

    sla.resume(session, ticket=ticket, now=T0 + 50 * H, config=CLOCK)
    assert resolution.status is TimerStatus.ACTIVE and resolution.remaining_seconds is None
    assert resolution.deadline_at == T0 + 112 * H
    # 20 % of 72h (14.4h) before the new deadline
    assert resolution.warn_at == resolution.fire_at == T0 + 112 * H - 72 * H * 0.2
    assert sla.next_deadline(session, ticket=ticket) == T0 + 112 * H


def test_resume_after_warning_fires_only_the_breach(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    first.warned_at = T0 + 20 * H
    sla.pause(session, ticket=ticket, now=T0 + 22 * H, config=CLOCK)
    sla.resume(session, ticket=ticket, now=T0 + 30 * H, config=CLOCK)
    assert first.deadline_at == T0 + 32 * H and first.fire_at == first.deadline_at


def test_resume_past_the_warning_point_warns_at_once(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    sla.pause(session, ticket=ticket, now=T0 + 23 * H, config=CLOCK)  # 1h left, warning unsent
    sla.resume(session, ticket=ticket, now=T0 + 40 * H, config=CLOCK)
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    assert first.fire_at == first.warn_at == T0 + 40 * H and first.deadline_at == T0 + 41 * H


def test_customer_message_resumes_a_paused_clock(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    sla.on_agent_response(session, ticket=ticket, now=T0 + H)
    sla.pause(session, ticket=ticket, now=T0 + 2 * H, config=CLOCK)
    sla.on_customer_message(session, ticket=ticket, now=T0 + 5 * H, config=CLOCK)
    running = live(session, ticket)
    assert running[TimerKind.RESOLUTION].status is TimerStatus.ACTIVE
    assert running[TimerKind.RESOLUTION].deadline_at == T0 + 75 * H
    assert running[TimerKind.NEXT_RESPONSE].status is TimerStatus.ACTIVE


def test_solving_stops_the_clock_and_schedules_aftercare(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    scheduled = sla.on_solved(session, ticket=ticket, now=T0 + 5 * H, config=CLOCK)
    assert {t.kind: t.fire_at for t in scheduled} == {
        TimerKind.FOLLOWUP: T0 + 29 * H, TimerKind.CSAT_REMINDER: T0 + 9 * H}
    assert set(live(session, ticket)) == {TimerKind.FOLLOWUP, TimerKind.CSAT_REMINDER}
    assert sla.next_deadline(session, ticket=ticket) is None


def test_followup_delay_is_a_parameter(session, ticket) -> None:
    scheduled = sla.on_solved(session, ticket=ticket, now=T0, config=CLOCK, followup_after_hours=48)
    assert {t.kind: t.fire_at for t in scheduled}[TimerKind.FOLLOWUP] == T0 + 48 * H


def test_followup_ignores_business_hours(session, ticket) -> None:
    shop = sla.SlaConfig(calendar=business_hours.parse("mon-fri 09:00-10:00", "UTC"))
    scheduled = sla.on_solved(session, ticket=ticket, now=T0, config=shop)
    assert {t.kind: t.fire_at for t in scheduled}[TimerKind.FOLLOWUP] == T0 + 24 * H


def test_reopening_cancels_aftercare_and_restarts_the_clock(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    sla.on_solved(session, ticket=ticket, now=T0 + 5 * H, config=CLOCK)
    started = sla.on_reopened(session, ticket=ticket, now=T0 + 10 * H, config=CLOCK)
    assert {(t.kind, t.generation) for t in started} == {
        (TimerKind.NEXT_RESPONSE, 1), (TimerKind.RESOLUTION, 2)}
    running = live(session, ticket)
    assert set(running) == {TimerKind.NEXT_RESPONSE, TimerKind.RESOLUTION}
    assert running[TimerKind.RESOLUTION].deadline_at == T0 + 82 * H
    assert sla.on_reopened(session, ticket=ticket, now=T0 + 11 * H, config=CLOCK) == []


def test_closing_ends_every_timer(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    sla.on_solved(session, ticket=ticket, now=T0 + H, config=CLOCK)
    sla.on_closed(session, ticket=ticket, now=T0 + 2 * H, config=CLOCK)
    assert live(session, ticket) == {}
    assert {t.completed_at for t in timers(session, ticket)} <= {T0 + H, T0 + 2 * H}


def test_next_deadline_is_the_soonest_running_one(session, ticket) -> None:
    assert sla.next_deadline(session, ticket=ticket) is None
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    assert sla.next_deadline(session, ticket=ticket) == T0 + 24 * H
    sla.on_agent_response(session, ticket=ticket, now=T0 + H)
    assert sla.next_deadline(session, ticket=ticket) == T0 + 72 * H


def test_timers_survive_a_round_trip(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    session.commit()
    session.expire_all()
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    assert first.deadline_at == T0 + 24 * H and first.deadline_at.tzinfo is not None


# --- firing ------------------------------------------------------------------------------------
def test_fire_warns_then_breaches_exactly_once(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    session.commit()
    assert sla.fire(session, timer_id=first.id, now=T0 + 19 * H) is None  # not due yet

    warning = sla.fire(session, timer_id=first.id, now=T0 + 20 * H)
    assert warning is not None and warning.action is sla.Action.WARNING
    assert warning.ticket_id == ticket.id and warning.deadline_at == T0 + 24 * H
    assert sla.fire(session, timer_id=first.id, now=T0 + 20 * H) is None  # already moved on
    session.commit()
    session.expire_all()
    assert first.warned_at == T0 + 20 * H and first.fire_at == T0 + 24 * H

    breach = sla.fire(session, timer_id=first.id, now=T0 + 25 * H)
    assert breach is not None and breach.action is sla.Action.BREACH
    assert sla.fire(session, timer_id=first.id, now=T0 + 26 * H) is None
    session.commit()
    session.expire_all()
    assert first.status is TimerStatus.DONE and first.breached_at == T0 + 25 * H
    assert first.fire_at is None


def test_overdue_warning_becomes_a_breach(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    resolution = live(session, ticket)[TimerKind.RESOLUTION]
    firing = sla.fire(session, timer_id=resolution.id, now=T0 + 100 * H)  # the worker was down
    assert firing is not None and firing.action is sla.Action.BREACH


def test_aftercare_timers_fire_once_as_themselves(session, ticket) -> None:
    scheduled = {t.kind: t.id for t in sla.on_solved(session, ticket=ticket, now=T0, config=CLOCK)}
    reminder = sla.fire(session, timer_id=scheduled[TimerKind.CSAT_REMINDER], now=T0 + 4 * H)
    followup = sla.fire(session, timer_id=scheduled[TimerKind.FOLLOWUP], now=T0 + 24 * H)
    assert reminder is not None and reminder.action is sla.Action.CSAT_REMINDER
    assert followup is not None and followup.action is sla.Action.FOLLOWUP
    assert sla.fire(session, timer_id=scheduled[TimerKind.FOLLOWUP], now=T0 + 25 * H) is None


def test_paused_or_missing_timers_do_not_fire(session, ticket) -> None:
    sla.start_ticket_timers(session, ticket=ticket, now=T0, config=CLOCK)
    first = live(session, ticket)[TimerKind.FIRST_RESPONSE]
    sla.pause(session, ticket=ticket, now=T0 + H, config=CLOCK)
    assert sla.fire(session, timer_id=first.id, now=T0 + 100 * H) is None
    assert sla.fire(session, timer_id=10**9, now=T0) is None
