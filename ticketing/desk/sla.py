"""SLA policies and the life of every ticket timer (rules §SLA-1: respond in 24h, resolve in 72h).

The targets are the built-in table below unless an admin set others for a (priority, segment)
in ``sla_policies``; the business hours are the deployment's unless an admin set them in
``desk_settings`` (``ticketing.desk.policies`` writes both). Timers started before a change
keep their deadlines: a promise already made is not rewritten.

Each deadline is an :class:`~ticketing.core.models.SlaTimer` row. ``fire_at`` is the next instant
the worker must act: first the warning at 80 % of the budget, then the breach. Waiting on the
customer pauses the clock (remaining business seconds are kept); a restart (customer writes
again, ticket reopened) makes a new generation rather than rewriting history, so reports can
count every breach. Firing is a compare-and-set in :func:`fire`, safe with many workers.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ticketing.desk import business_hours, timer_index
from ticketing.core.clock import utcnow
from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.settings import ScheduleSettings, schedule_of
from ticketing.core.models import (
    Customer, DeskSetting, Priority, Segment, SlaPolicyRow, SlaTimer, Ticket, TicketState,
    TimerKind, TimerStatus,
)

WARN_FRACTION = 0.8
RESPONSE_KINDS = (TimerKind.FIRST_RESPONSE, TimerKind.NEXT_RESPONSE)
SLA_KINDS = (*RESPONSE_KINDS, TimerKind.RESOLUTION)  # the ones with a budget, warning and breach
AFTERCARE_KINDS = (TimerKind.FOLLOWUP, TimerKind.CSAT_REMINDER)  # one-shot reminders
LIVE = (TimerStatus.ACTIVE, TimerStatus.PAUSED)

KIND_NAMES: dict[TimerKind, Text] = {
    TimerKind.FIRST_RESPONSE: Text(zh="首次响应", en="first response"),
    TimerKind.NEXT_RESPONSE: Text(zh="回复", en="next response"),
    TimerKind.RESOLUTION: Text(zh="解决", en="resolution"),
    TimerKind.FOLLOWUP: Text(zh="回访", en="follow-up"),
    TimerKind.CSAT_REMINDER: Text(zh="满意度评价提醒", en="satisfaction survey reminder"),
}

# hours: (first response, resolution); "normal" is the rule of rules §SLA-1
_HOURS: dict[Priority, tuple[float, float]] = {
    Priority.LOW: (48, 120),
    Priority.NORMAL: (24, 72),
    Priority.HIGH: (8, 48),
    Priority.URGENT: (2, 24),
}
VIP_FACTOR = 0.5  # rules §SLA-2: segment shortens the SLA
BUSINESS_HOURS_SETTING = "business_hours"  # desk_settings key: {"spec": "mon-fri 09:00-18:00"}


@dataclass(frozen=True)
class SlaPolicy:
    """How long the desk has for a ticket of this priority and customer segment."""

    priority: Priority
    first_response: timedelta
    resolution: timedelta
    vip: bool = False
    next_response_budget: timedelta | None = None  # an admin's own target; None: as the first

    @property
    def next_response(self) -> timedelta:
        """A customer who writes again deserves the same promptness as the first time, unless
        an admin set the follow-up replies a target of their own."""
        return self.next_response_budget or self.first_response

    def budget(self, kind: TimerKind) -> timedelta:
        if kind is TimerKind.RESOLUTION:
            return self.resolution
        if kind is TimerKind.FIRST_RESPONSE:
            return self.first_response
        if kind is TimerKind.NEXT_RESPONSE:
            return self.next_response
        raise ValidationError(f"{kind.value} timers have no SLA budget")


def policy_for(*, priority: Priority | str, segment: Segment | str | None) -> SlaPolicy:
    """The policy table: low 48h/120h, normal 24h/72h, high 8h/48h, urgent 2h/24h; VIP halves."""
    try:
        prio = Priority(priority)
    except ValueError as exc:
        raise ValidationError(f"unknown priority {priority!r}") from exc
    vip = segment is not None and Segment(segment) is Segment.VIP
    factor = VIP_FACTOR if vip else 1.0
    first, resolution = _HOURS[prio]
    return SlaPolicy(prio, timedelta(hours=first * factor), timedelta(hours=resolution * factor), vip)


def segment_key(segment: Segment | str | None) -> str:
    """The segment an ``sla_policies`` row is kept under (no segment is a regular customer)."""
    return Segment(segment).value if segment is not None else Segment.REGULAR.value


def policy_in(session: Session, *, priority: Priority | str,
              segment: Segment | str | None) -> SlaPolicy:
    """The targets the desk works to: the admin's ``sla_policies`` row for (priority, segment)
    when there is one, else :func:`policy_for` (one query)."""
    default = policy_for(priority=priority, segment=segment)
    row = session.scalar(select(SlaPolicyRow).where(
        SlaPolicyRow.priority == default.priority.value,
        SlaPolicyRow.segment == segment_key(segment)))
    if row is None:
        return default
    return SlaPolicy(default.priority, timedelta(minutes=row.first_response_minutes),
                     timedelta(minutes=row.resolution_minutes), default.vip,
                     timedelta(minutes=row.next_response_minutes))


def business_hours_spec(session: Session) -> str | None:
    """The business hours an admin set (``desk_settings``), or None for the deployment's."""
    value = session.scalar(select(DeskSetting.value).where(
        DeskSetting.key == BUSINESS_HOURS_SETTING))
    spec = value.get("spec") if isinstance(value, dict) else None
    return spec if isinstance(spec, str) and spec.strip() else None


@dataclass(frozen=True)
class SlaConfig:
    """The deployment's calendar and after-care delays."""

    calendar: business_hours.Calendar
    followup_after: timedelta = timedelta(hours=24)
    csat_reminder_after: timedelta = timedelta(hours=4)

    @classmethod
    def for_session(cls, session: Session) -> SlaConfig:
        """The schedule the session's factory carries (:func:`ticketing.core.settings.schedule_of`),
        with the business hours an admin set in its place: one query per call."""
        schedule = schedule_of(session)
        return _config_for(schedule, business_hours_spec(session) or schedule.business_hours)


@functools.lru_cache(maxsize=16)
def _config_for(schedule: ScheduleSettings, spec: str | None) -> SlaConfig:
    """Cached by the spec string: a calendar is parsed once per process, whoever set it."""
    calendar = business_hours.calendar_for(spec, schedule.timezone)
    return SlaConfig(calendar=calendar,
                     followup_after=timedelta(hours=schedule.followup_after_hours))


def _config(config: SlaConfig | None, session: Session) -> SlaConfig:
    return config if config is not None else SlaConfig.for_session(session)


def _policy(session: Session, ticket: Ticket) -> SlaPolicy:
    segment = session.scalar(select(Customer.segment).where(Customer.id == ticket.customer_id))
    return policy_in(session, priority=ticket.priority, segment=segment)


class _TicketTimers:
    """A ticket's timers, read once per call: on a busy database round trips dominate."""

    def __init__(self, session: Session, ticket: Ticket) -> None:
        if ticket.id is None:
            session.flush()
        self.session, self.ticket = session, ticket
        self.all = list(session.scalars(
            select(SlaTimer).where(SlaTimer.ticket_id == ticket.id).order_by(SlaTimer.id)))

    def pick(self, kinds: Iterable[TimerKind], statuses: Iterable[TimerStatus]) -> list[SlaTimer]:
        kinds, statuses = tuple(kinds), tuple(statuses)
        return [t for t in self.all if t.kind in kinds and t.status in statuses]

    def start(self, kind: TimerKind, *, now: datetime, seconds: float, cfg: SlaConfig) -> SlaTimer:
        generation = max((t.generation for t in self.all if t.kind is kind), default=0) + 1
        timer = SlaTimer(ticket_id=self.ticket.id, kind=kind, generation=generation,
                         status=TimerStatus.ACTIVE, started_at=now)
        if kind in SLA_KINDS:
            timer.deadline_at = cfg.calendar.add_business_seconds(now, seconds)
            timer.warn_at = cfg.calendar.add_business_seconds(now, seconds * WARN_FRACTION)
            timer.fire_at = timer.warn_at
        else:  # after-care runs on the customer's clock, not the desk's hours
            timer.deadline_at = timer.fire_at = now + timedelta(seconds=seconds)
        self.session.add(timer)
        self.all.append(timer)
        return timer

    def ensure(self, kind: TimerKind, *, now: datetime, policy: SlaPolicy, cfg: SlaConfig,
               blocking: Iterable[TimerKind] | None = None) -> SlaTimer | None:
        """Start ``kind`` unless a live timer of ``blocking`` kinds (default: itself) exists."""
        if self.pick(blocking or (kind,), LIVE):
            return None
        return self.start(kind, now=now, seconds=policy.budget(kind).total_seconds(), cfg=cfg)

    def resume(self, *, now: datetime, cfg: SlaConfig) -> list[SlaTimer]:
        resumed = self.pick(SLA_KINDS, (TimerStatus.PAUSED,))
        if not resumed:
            return []
        policy = _policy(self.session, self.ticket)
        for timer in resumed:
            left = max(0.0, timer.remaining_seconds or 0.0)
            timer.deadline_at = cfg.calendar.add_business_seconds(now, left)
            if timer.warned_at is None:
                to_warning = left - policy.budget(timer.kind).total_seconds() * (1 - WARN_FRACTION)
                timer.warn_at = cfg.calendar.add_business_seconds(now, max(0.0, to_warning))
                timer.fire_at = timer.warn_at
            else:
                timer.fire_at = timer.deadline_at
            timer.status = TimerStatus.ACTIVE
            timer.remaining_seconds = None
        return resumed


def _complete(timers: Iterable[SlaTimer], now: datetime) -> list[SlaTimer]:
    done = []
    for timer in timers:
        timer.status = TimerStatus.DONE
        timer.completed_at = now
        timer.fire_at = None
        timer.remaining_seconds = None
        done.append(timer)
    return done


# --- lifecycle ----------------------------------------------------------------------------------
def start_ticket_timers(session: Session, *, ticket: Ticket, now: datetime | None = None,
                        config: SlaConfig | None = None) -> list[SlaTimer]:
    """Start FIRST_RESPONSE and RESOLUTION for a new ticket (idempotent)."""
    now, cfg, policy = now or utcnow(), _config(config, session), _policy(session, ticket)
    timers = _TicketTimers(session, ticket)
    started = [timers.ensure(kind, now=now, policy=policy, cfg=cfg)
               for kind in (TimerKind.FIRST_RESPONSE, TimerKind.RESOLUTION)]
    session.flush()
    return [t for t in started if t is not None]


def on_agent_response(session: Session, *, ticket: Ticket, now: datetime | None = None,
                      config: SlaConfig | None = None) -> list[SlaTimer]:
    """A public agent reply meets the first/next response deadline."""
    return _complete(_TicketTimers(session, ticket).pick(RESPONSE_KINDS, LIVE), now or utcnow())


def on_customer_message(session: Session, *, ticket: Ticket, now: datetime | None = None,
                        config: SlaConfig | None = None) -> SlaTimer | None:
    """The customer wrote: the clock runs again and a reply is owed (new NEXT_RESPONSE).

    Solved and closed tickets are left alone: reopening them is :func:`on_reopened`'s job.
    """
    now, cfg = now or utcnow(), _config(config, session)
    if ticket.state in (TicketState.SOLVED, TicketState.CLOSED):
        return None
    timers = _TicketTimers(session, ticket)
    timers.resume(now=now, cfg=cfg)
    started = timers.ensure(TimerKind.NEXT_RESPONSE, now=now, policy=_policy(session, ticket), cfg=cfg,
                            blocking=RESPONSE_KINDS)
    session.flush()
    return started


def pause(session: Session, *, ticket: Ticket, now: datetime | None = None,
          config: SlaConfig | None = None) -> list[SlaTimer]:
    """Waiting on the customer stops the clock; the business seconds left are kept."""
    now, cfg = now or utcnow(), _config(config, session)
    paused = _TicketTimers(session, ticket).pick(SLA_KINDS, (TimerStatus.ACTIVE,))
    for timer in paused:
        left = cfg.calendar.business_seconds_between(now, timer.deadline_at) if timer.deadline_at else 0.0
        timer.remaining_seconds = left
        timer.status = TimerStatus.PAUSED
        timer.fire_at = None
    return paused


def resume(session: Session, *, ticket: Ticket, now: datetime | None = None,
           config: SlaConfig | None = None) -> list[SlaTimer]:
    """Restart paused timers from what was left; a warning not yet given comes at 80 % again."""
    return _TicketTimers(session, ticket).resume(now=now or utcnow(), cfg=_config(config, session))


def on_solved(session: Session, *, ticket: Ticket, now: datetime | None = None,
              config: SlaConfig | None = None, followup_after_hours: float | None = None) -> list[SlaTimer]:
    """Stop the response/resolution clocks; schedule the follow-up (回访) and survey reminder."""
    now, cfg = now or utcnow(), _config(config, session)
    timers = _TicketTimers(session, ticket)
    _complete(timers.pick((*SLA_KINDS, *AFTERCARE_KINDS), LIVE), now)
    followup = (timedelta(hours=followup_after_hours) if followup_after_hours is not None
                else cfg.followup_after)
    scheduled = [
        timers.start(TimerKind.FOLLOWUP, now=now, seconds=followup.total_seconds(), cfg=cfg),
        timers.start(TimerKind.CSAT_REMINDER, now=now, seconds=cfg.csat_reminder_after.total_seconds(),
                     cfg=cfg),
    ]
    session.flush()
    return scheduled


def on_reopened(session: Session, *, ticket: Ticket, now: datetime | None = None,
                config: SlaConfig | None = None) -> list[SlaTimer]:
    """Not solved after all: cancel after-care, owe a reply and a resolution again."""
    now, cfg = now or utcnow(), _config(config, session)
    timers = _TicketTimers(session, ticket)
    _complete(timers.pick(AFTERCARE_KINDS, LIVE), now)
    timers.resume(now=now, cfg=cfg)
    policy = _policy(session, ticket)
    started = [
        timers.ensure(TimerKind.NEXT_RESPONSE, now=now, policy=policy, cfg=cfg, blocking=RESPONSE_KINDS),
        timers.ensure(TimerKind.RESOLUTION, now=now, policy=policy, cfg=cfg),
    ]
    session.flush()
    return [t for t in started if t is not None]


def on_closed(session: Session, *, ticket: Ticket, now: datetime | None = None,
              config: SlaConfig | None = None) -> list[SlaTimer]:
    """A closed ticket owes nothing more: every live timer ends."""
    return _complete(_TicketTimers(session, ticket).pick(list(TimerKind), LIVE), now or utcnow())


def next_deadline(session: Session, *, ticket: Ticket) -> datetime | None:
    """The soonest running SLA deadline, for display; None when the clock is stopped."""
    return session.scalar(
        select(func.min(SlaTimer.deadline_at)).where(
            SlaTimer.ticket_id == ticket.id, SlaTimer.kind.in_(SLA_KINDS),
            SlaTimer.status == TimerStatus.ACTIVE,
        )
    )


# --- firing (called by the worker) ------------------------------------------------------------
class Action(str, enum.Enum):
    WARNING = "warning"
    BREACH = "breach"
    FOLLOWUP = "followup"
    CSAT_REMINDER = "csat_reminder"


@dataclass(frozen=True)
class Firing:
    """What one worker won the right to do for one timer."""

    timer_id: int
    ticket_id: int
    kind: TimerKind
    generation: int
    action: Action
    deadline_at: datetime | None


def fire(session: Session, *, timer_id: int, now: datetime | None = None) -> Firing | None:
    """Advance a due timer by compare-and-set; None if it is not due or another worker won.

    Only the transaction whose UPDATE matched (id, status='active', fire_at=expected) gets a
    Firing, so side effects done in the same transaction happen exactly once.
    """
    now = now or utcnow()
    row = session.execute(
        select(SlaTimer.ticket_id, SlaTimer.kind, SlaTimer.generation, SlaTimer.status,
               SlaTimer.fire_at, SlaTimer.warn_at, SlaTimer.warned_at, SlaTimer.deadline_at)
        .where(SlaTimer.id == timer_id)
    ).one_or_none()
    if row is None or row.status is not TimerStatus.ACTIVE or row.fire_at is None or row.fire_at > now:
        return None
    values: dict[str, object]
    if row.kind in SLA_KINDS:
        warn_due = row.warned_at is None and row.warn_at == row.fire_at
        if warn_due and row.deadline_at is not None and row.deadline_at > now:
            action, values = Action.WARNING, {"warned_at": now, "fire_at": row.deadline_at}
        else:  # a warning overtaken by its deadline is not worth sending: breach at once
            action = Action.BREACH
            values = {"breached_at": now, "status": TimerStatus.DONE, "completed_at": now, "fire_at": None}
    else:
        action = Action(row.kind.value)
        values = {"status": TimerStatus.DONE, "completed_at": now, "fire_at": None}
    result = session.execute(
        update(SlaTimer)
        .where(SlaTimer.id == timer_id, SlaTimer.status == TimerStatus.ACTIVE,
               SlaTimer.fire_at == row.fire_at)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    timer_index.mark(session, timer_id, values["fire_at"])  # type: ignore[arg-type]
    return Firing(timer_id, row.ticket_id, row.kind, row.generation, action, row.deadline_at)
