"""Keep the reports' per-ticket and per-conversation facts true, in the same transaction.

Any unit of work that adds or changes a ticket, its events, messages, SLA timers or survey
marks that ticket; just before the commit its :class:`~ticketing.core.models.TicketFact` row
and its :class:`~ticketing.core.models.ReplyWait` rows are recomputed from the source rows.
A stored inbound message extends (or starts) its :class:`~ticketing.core.models.ConversationFact`.
The listeners are on SQLAlchemy's ``Session`` class, so no process can forget to install
them; writes are upserts, so two processes refreshing one ticket at once cannot collide.
:func:`rebuild` recomputes everything (after a time-zone change, or for an old database).
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, insert, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from ticketing.conversations import inbound
from ticketing.core.clock import aware, utcnow
from ticketing.core.models import (
    Customer,
    InboundMessage,
    ReplyWait,
    ReportDay,
    ReportMark,
    SlaTimer,
    Survey,
    Ticket,
    TicketEvent,
    TicketFact,
    TicketMessage,
    TimerKind,
    TimerStatus,
)
from ticketing.core.settings import schedule_of
from ticketing.desk import business_hours, conversation_facts
from ticketing.desk.upsert import upsert
from ticketing.desk.sla import SlaConfig

log = logging.getLogger(__name__)

_TICKETS = "kefu.facts.tickets"
_INBOUND = inbound.ARRIVALS
_CHATS = "kefu.facts.chat_tickets"
_SLA_TARGETS = {
    TimerKind.FIRST_RESPONSE: "first_response",
    TimerKind.NEXT_RESPONSE: "next_response",
    TimerKind.RESOLUTION: "resolution",
}
_MARKS_TICKET = (TicketEvent, TicketMessage, SlaTimer, Survey)


# --- what changed --------------------------------------------------------------------------
def _noted(session: Session, flush_context: Any) -> None:
    """After each flush: remember the tickets and conversations the flush touched."""
    tickets: set[int] = session.info.setdefault(_TICKETS, set())
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Ticket):
            if obj.id is not None:
                tickets.add(obj.id)
                if obj in session.new and obj.conversation_id:
                    session.info.setdefault(_CHATS, set()).add(obj.id)
        elif isinstance(obj, _MARKS_TICKET):
            if obj.ticket_id is not None:
                tickets.add(obj.ticket_id)
    for obj in session.new:
        if isinstance(obj, InboundMessage) and obj.id is not None:
            # what folding needs, read here (no query for the row just written)
            session.info.setdefault(_INBOUND, []).append(
                (obj.conversation_id, obj.channel, obj.received_at))


def _before_commit(session: Session) -> None:
    """Recompute what the transaction touched; a flush may touch more, so loop (bounded)."""
    for _ in range(3):
        session.flush()
        tickets = session.info.pop(_TICKETS, set())
        arrivals = session.info.pop(_INBOUND, [])
        chats = session.info.pop(_CHATS, set())
        if not tickets and not arrivals and not chats:
            return
        if arrivals:
            conversation_facts.extend(session, [conversation_facts.Arrival(*a) for a in arrivals])
        if chats:
            for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(sorted(chats)))):
                conversation_facts.note_ticket(session, ticket)
        if tickets:
            refresh(session, sorted(tickets))
    session.flush()


def _forget(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended: what it noted is done with. Not ``after_rollback``,
    which also fires when a savepoint rolls back (a lost claim race, a bad row of a shop
    batch) and would drop the tickets the rest of the transaction touched, leaving their
    facts stale; a ticket noted inside the rolled-back savepoint is just recomputed as is."""
    if transaction.parent is None:
        for key in (_TICKETS, _INBOUND, _CHATS):
            session.info.pop(key, None)


event.listen(Session, "after_flush", _noted)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_transaction_end", _forget)


# --- tickets -------------------------------------------------------------------------------
def refresh(session: Session, ticket_ids: Sequence[int]) -> int:
    """Recompute the facts of ``ticket_ids`` (missing tickets are skipped); returns how many."""
    done = 0
    for chunk in _chunks(list(ticket_ids), 500):
        done += _refresh_chunk(session, chunk)
    return done


def _refresh_chunk(session: Session, ids: list[int]) -> int:
    schedule = schedule_of(session)
    zone = ZoneInfo(schedule.timezone)
    calendar = SlaConfig.for_session(session).calendar
    tickets = session.execute(
        select(Ticket, Customer.segment).join(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.id.in_(ids))
    ).all()
    if not tickets:
        return 0
    events = _grouped(session.execute(
        select(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.kind, TicketEvent.to_value,
               TicketEvent.actor_type)
        .where(TicketEvent.ticket_id.in_(ids)).order_by(TicketEvent.id)))
    messages = _grouped(session.execute(
        select(TicketMessage.ticket_id, TicketMessage.at, TicketMessage.author_type,
               TicketMessage.internal)
        .where(TicketMessage.ticket_id.in_(ids)).order_by(TicketMessage.at, TicketMessage.id)))
    timers = _grouped(session.execute(
        select(SlaTimer.ticket_id, SlaTimer.kind, SlaTimer.status, SlaTimer.deadline_at,
               SlaTimer.completed_at, SlaTimer.breached_at)
        .where(SlaTimer.ticket_id.in_(ids), SlaTimer.kind.in_(list(_SLA_TARGETS)))))
    surveys = {row.ticket_id: row for row in session.execute(
        select(Survey.ticket_id, Survey.sent_at, Survey.agent_id, Survey.team_id, Survey.score)
        .where(Survey.ticket_id.in_(ids)))}
    now = utcnow()
    fact_rows: list[dict[str, Any]] = []
    wait_rows: list[dict[str, Any]] = []
    for ticket, segment in tickets:
        waits = reply_waits(ticket, messages.get(ticket.id, []), calendar)
        wait_rows.extend(waits)
        fact = _ticket_fact(ticket, segment, events.get(ticket.id, []), waits,
                            timers.get(ticket.id, []), surveys.get(ticket.id), calendar, zone)
        fact["refreshed_at"] = now
        fact_rows.append(fact)
    found = [row["ticket_id"] for row in fact_rows]
    upsert(session, TicketFact, fact_rows, ["ticket_id"])
    session.execute(delete(ReplyWait).where(ReplyWait.ticket_id.in_(found)))
    if wait_rows:
        upsert(session, ReplyWait, wait_rows, ["ticket_id", "seq"])
    if session.get_bind().dialect.name == "postgresql":
        # the dashboard's day cells of these days are out of date until rebuilt
        # (reports.cells; PostgreSQL only: SQLite shops read the facts)
        session.execute(insert(ReportMark), [{"day": day} for day in
                                             sorted({row["created_day"] for row in fact_rows})])
    return len(fact_rows)


def reply_waits(ticket: Ticket, messages: Sequence[Any],
                calendar: business_hours.Calendar) -> list[dict[str, Any]]:
    """The customer's waits for a person on ``ticket`` (see :class:`ReplyWait`).

    The first starts when the ticket reaches the desk; after an agent's public reply, the
    customer's next message starts another. Internal notes, the bot and the system answer
    nobody. A wait still open has no end and no duration.
    """
    waits: list[dict[str, Any]] = []
    start: datetime | None = aware(ticket.created_at)
    for message in messages:
        at = aware(message.at)
        if message.author_type == "agent" and not message.internal:
            if start is not None:
                at = max(at, start)
                waits.append(_wait(ticket.id, len(waits), start, at, calendar))
                start = None
        elif message.author_type == "customer" and start is None and at >= aware(ticket.created_at):
            start = at
    if start is not None:
        waits.append(_wait(ticket.id, len(waits), start, None, calendar))
    return waits


def _wait(ticket_id: int, seq: int, asked: datetime, answered: datetime | None,
          calendar: business_hours.Calendar) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id, "seq": seq, "asked_at": asked, "answered_at": answered,
        "seconds": None if answered is None else (answered - asked).total_seconds(),
        "business_seconds": (None if answered is None
                             else calendar.business_seconds_between(asked, answered)),
    }


def _ticket_fact(ticket: Ticket, segment: Any, events: Sequence[Any],
                 waits: Sequence[dict[str, Any]], timers: Sequence[Any], survey: Any,
                 calendar: business_hours.Calendar, zone: ZoneInfo) -> dict[str, Any]:
    created = aware(ticket.created_at)
    solved = [aware(e.at) for e in events if e.to_value == "solved"]
    state = _value(ticket.state)
    last_solved = solved[-1] if solved and state in ("solved", "closed") else None
    first = waits[0] if waits and waits[0]["answered_at"] is not None else None
    fact: dict[str, Any] = {
        "ticket_id": ticket.id,
        "created_at": created,
        "created_day": created.astimezone(zone).date().isoformat(),
        "channel": _value(ticket.channel),
        "category": _value(ticket.category),
        "priority": _value(ticket.priority),
        "tier": int(ticket.tier or 1),
        "segment": _value(segment),
        "team_id": ticket.team_id,
        "owner_id": ticket.owner_id,
        "state": state,
        "handed_off": bool(ticket.conversation_id) and any(
            e.kind == "created" and e.actor_type == "bot" for e in events),
        "first_response_at": first["answered_at"] if first else None,
        "first_response_s": first["seconds"] if first else None,
        "first_response_bh_s": first["business_seconds"] if first else None,
        "replies_waited": sum(1 for w in waits[1:] if w["answered_at"] is not None),
        "first_solved_at": solved[0] if solved else None,
        "last_solved_at": last_solved,
        "resolution_first_s": _span(created, solved[0] if solved else None),
        "resolution_first_bh_s": _business(calendar, created, solved[0] if solved else None),
        "resolution_last_s": _span(created, last_solved),
        "resolution_last_bh_s": _business(calendar, created, last_solved),
        "reopened": int(ticket.reopen_count or 0),
        "escalated": sum(1 for e in events if e.kind == "escalated"),
        "survey_sent_at": None, "survey_day": None, "survey_agent_id": None,
        "survey_team_id": None, "csat_score": None,
    }
    for kind, target in _SLA_TARGETS.items():
        verdict, due = sla_verdict([t for t in timers if t.kind is kind])
        fact[f"sla_{target}"] = verdict
        fact[f"sla_{target}_due_at"] = due
    if survey is not None:
        sent = aware(survey.sent_at)
        fact.update(survey_sent_at=sent, survey_day=sent.astimezone(zone).date().isoformat(),
                    survey_agent_id=survey.agent_id, survey_team_id=survey.team_id,
                    csat_score=survey.score)
    return fact


def sla_verdict(timers: Sequence[Any]) -> tuple[str | None, datetime | None]:
    """One target of one ticket over all its timer generations (a reopen restarts a clock).

    breached: any generation breached or finished late; pending: a clock still running (its
    deadline returned: past it, reports count a breach even before the worker marks it) or
    paused; met: every decided generation in time; None: no clock of this kind ever ran.
    """
    if not timers:
        return None, None
    pending: datetime | None = None
    is_pending = False
    met = False
    for timer in timers:
        deadline = aware(timer.deadline_at) if timer.deadline_at is not None else None
        if timer.breached_at is not None:
            return "breached", None
        if timer.status in (TimerStatus.ACTIVE, TimerStatus.PAUSED):
            is_pending = True
            if timer.status is TimerStatus.ACTIVE and deadline is not None:
                pending = deadline if pending is None else min(pending, deadline)
        elif timer.completed_at is not None and deadline is not None:
            if aware(timer.completed_at) > deadline:
                return "breached", None
            met = True
    if is_pending:
        return "pending", pending
    return ("met", None) if met else (None, None)


# --- rebuilding ------------------------------------------------------------------------------
def missing_ticket_ids(session: Session, *, limit: int = 10_000) -> list[int]:
    """Tickets without a fact row (a database older than the facts, or an import)."""
    return list(session.scalars(
        select(Ticket.id).outerjoin(TicketFact, TicketFact.ticket_id == Ticket.id)
        .where(TicketFact.ticket_id.is_(None)).order_by(Ticket.id).limit(limit)))


def backfill(session_factory: sessionmaker[Session], *, batch: int = 2000) -> int:
    """Facts for every ticket that has none yet, in batches; cheap when there is nothing to do."""
    total = 0
    while True:
        with session_factory.begin() as session:
            ids = missing_ticket_ids(session, limit=batch)
            if not ids:
                break
            total += refresh(session, ids)
    if total:
        with session_factory.begin() as session:
            conversation_facts.rebuild(session)
    return total


def rebuild(session_factory: sessionmaker[Session], *, batch: int = 2000) -> int:
    """Recompute every fact from the source rows (e.g. after changing the shop's time zone).
    Every day's dashboard cells are forgotten first: a ticket may move to another local day,
    and a day left without tickets would get no mark (the dashboard reads days not built from
    the facts until the reports job builds them again)."""
    total, after = 0, 0
    with session_factory.begin() as session:
        session.execute(delete(ReportDay))
    while True:
        with session_factory.begin() as session:
            ids = list(session.scalars(select(Ticket.id).where(Ticket.id > after)
                                       .order_by(Ticket.id).limit(batch)))
            if not ids:
                break
            total += refresh(session, ids)
            after = ids[-1]
    with session_factory.begin() as session:
        conversation_facts.rebuild(session)
    return total


# --- shared ----------------------------------------------------------------------------------
def _grouped(rows: Iterable[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.ticket_id].append(row)
    return grouped


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _span(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else max(0.0, (end - start).total_seconds())


def _business(calendar: business_hours.Calendar, start: datetime,
              end: datetime | None) -> float | None:
    return None if end is None else calendar.business_seconds_between(start, max(start, end))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ticketing.desk.facts rebuild|backfill``: recompute the reports' facts."""
    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m ticketing.desk.facts")
    parser.add_argument("command", choices=("rebuild", "backfill"),
                        help="rebuild: every ticket (after changing the time zone or business "
                             "hours); backfill: only tickets without facts")
    args = parser.parse_args(argv)
    settings = load_settings()
    factory = make_session_factory(make_engine(settings.database_url), schedule=settings.schedule)
    done = rebuild(factory) if args.command == "rebuild" else backfill(factory)
    print(f"facts: {done} tickets recomputed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
