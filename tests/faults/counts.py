"""Counting what the fault suite promises: nothing lost, nothing twice, nothing out of order.

The database is the system of record: every message the customers sent is looked up in the
inbound log, every answer in the outbox (a bot answer names the message it answers in its
payload's ``reply_to``), and compared with what each simulated page was shown. Timers are
counted from ``sla_timers`` (``warned_at``/``breached_at``) and from the alarms they raised
(a timer fired twice alarms the same agent twice).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.faults.cluster import Fault
from tests.faults.customer import Customer, Turn
from ticketing.core.models import (
    InboundMessage, Notification, OutboxMessage, SlaTimer, TimerStatus,
)
from ticketing.desk.sla import SLA_KINDS

ANSWERED_ROUTES = ("rasa", "fallback_ticket", "ticket")
HIT_MARGIN = 3.0  # seconds after a fault's end that still count as hit by it


@dataclass
class TurnFacts:
    """One message of one customer, judged."""

    visitor: str
    client_id: str
    sent: float
    done: float
    route: str | None = None
    stored: bool = False
    answered: bool = False
    apologised: bool = False  # the assistant-down apology with a ticket number
    lost: bool = False  # never stored, stored but never routed, or an answer never delivered
    silent: bool = False  # routed to the assistant, but nothing reached the page
    duplicated: int = 0  # answered twice (an answer queued again for the same message)
    reordered: bool = False


@dataclass
class Row:
    """One line of the table: the turns a fault hit (or all of them)."""

    fault: str
    seconds: float = 0.0
    turns_hit: int = 0
    answered: int = 0
    apologised_ticket: int = 0
    to_ticket_thread: int = 0
    lost: int = 0
    silent: int = 0
    duplicated: int = 0
    reordered: int = 0


@dataclass
class Timers:
    due: int = 0
    fired: int = 0
    warnings: int = 0
    breaches: int = 0
    overtaken_warnings: int = 0  # the deadline passed before the warning: breach sent alone
    skipped: int = 0
    doubled: int = 0
    not_yet_due: int = 0


@dataclass
class Report:
    conversations: int
    sent: int
    stored: int
    answered: int
    routes: dict[str, int]
    lost: int
    silent: int
    duplicated: int
    redelivered_frames: int  # a row's frame again (same id: the widget shows it once)
    reordered: int
    undelivered_rows: int
    unavailable_retries: int = 0  # "unavailable" answers the page retried after 3 s
    reconnects: int = 0  # sockets a page opened again mid-turn
    no_handled_frame: int = 0  # turns routed whose socket never said they had ended
    unconfirmed_resends: int = 0  # frames sent again after no ``received`` for 15 s or more
    deferred: int = 0  # turns cut short after storing (database gone), answered by the replay
    rows: list[Row] = field(default_factory=list)
    timers: Timers = field(default_factory=Timers)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(session: Session, customers: list[Customer]) -> tuple[list[TurnFacts], dict[str, Any]]:
    """Every turn of every customer, against the database; plus conversation-level counts."""
    facts: list[TurnFacts] = []
    extra: dict[str, Any] = Counter()
    for customer in customers:
        conversation = f"widget:{customer.visitor}"
        inbound = {row.dedupe_key: row for row in session.scalars(
            select(InboundMessage).where(InboundMessage.conversation_id == conversation))}
        rows = list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.conversation_id == conversation).order_by(OutboxMessage.id)))
        extra["undelivered_rows"] += sum(1 for r in rows if r.delivered_at is None)
        live = Counter(s.id for s in customer.shown if s.live)
        seen = {s.id for s in customer.shown}
        redelivered = {i: n - 1 for i, n in live.items() if n > 1}
        extra["redelivered_frames"] += sum(redelivered.values())
        for entry_id in redelivered:  # when (monotonic) and through which gateway, each time
            extra.setdefault("redelivered", []).append(  # type: ignore[attr-defined]
                (entry_id, [(round(x.at, 1), x.gateway) for x in customer.shown
                            if x.live and x.id == entry_id]))
        # what the page showed live, first time each: must follow the database's order
        first_live = list(dict.fromkeys(s.id for s in customer.shown if s.live))
        late = {b for a, b in zip(first_live, first_live[1:]) if _num(b) < _num(a)}
        answers: dict[int, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            reply_to = (row.payload or {}).get("reply_to")
            if isinstance(reply_to, int):
                answers[reply_to].append(row)
        # answers in the outbox must follow the order of the messages they answer
        order = [(r.id, (r.payload or {}).get("reply_to")) for r in rows
                 if isinstance((r.payload or {}).get("reply_to"), int)]
        out_of_order: set[int] = set()
        highest = 0
        for _row_id, reply_to in order:
            if reply_to < highest:
                out_of_order.add(reply_to)
            highest = max(highest, reply_to)
        for turn in customer.turns:
            facts.append(_turn(customer, turn, inbound, answers, seen, redelivered, late,
                               out_of_order))
    return facts, dict(extra)


def _num(entry_id: str) -> int:
    try:
        return int(entry_id.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _turn(customer: Customer, turn: Turn, inbound: dict[str, InboundMessage],
          answers: dict[int, list[OutboxMessage]], seen: set[str],
          redelivered: dict[str, int], late: set[str], out_of_order: set[int]) -> TurnFacts:
    fact = TurnFacts(customer.visitor, turn.client_id, turn.sent, turn.done or float("inf"))
    row = inbound.get(f"{customer.visitor}:{turn.client_id}")
    if row is None:
        fact.lost = True
        return fact
    fact.stored, fact.route = True, row.route
    if row.handled_at is None:
        fact.lost = True
        return fact
    mine = answers.get(row.id, [])
    shown = [r for r in mine if f"out-{r.id}" in seen]
    if row.route in ("rasa", "fallback_ticket"):
        if not mine or any(r.delivered_at is None for r in mine):
            fact.lost = bool(mine)
            fact.silent = not shown
        fact.answered = bool(shown)
        fact.apologised = row.route == "fallback_ticket" and bool(shown)
    elif row.route == "ticket":
        fact.answered = True  # in the ticket thread, for the person who owns the ticket
    texts = Counter(r.text for r in mine)  # answered twice: the same answer queued again
    fact.duplicated = sum(n - 1 for n in texts.values() if n > 1)
    # one row sent again (its socket's gateway was killed before it recorded the delivery) is
    # shown once: the widget ignores an id it has (widget.js addEntry); counted apart
    fact.reordered = row.id in out_of_order or any(f"out-{r.id}" in late for r in mine)
    if not turn.done:
        fact.silent = True  # the customer gave up waiting
    return fact


def table(facts: list[TurnFacts], faults: list[Fault]) -> list[Row]:
    rows = []
    for fault in faults:
        hit = [f for f in facts if f.sent <= fault.ended + HIT_MARGIN and f.done >= fault.started]
        rows.append(_row(fault.name, hit, fault.ended - fault.started))
    rows.append(_row("all turns", facts, 0.0))
    return rows


def _row(name: str, facts: list[TurnFacts], seconds: float) -> Row:
    return Row(fault=name, seconds=round(seconds, 1), turns_hit=len(facts),
               answered=sum(f.answered for f in facts),
               apologised_ticket=sum(f.apologised for f in facts),
               to_ticket_thread=sum(f.route == "ticket" for f in facts),
               lost=sum(f.lost for f in facts), silent=sum(f.silent for f in facts),
               duplicated=sum(f.duplicated for f in facts),
               reordered=sum(f.reordered for f in facts))


def timers(session: Session, *, since: datetime, now: datetime, grace: float) -> Timers:
    """SLA timers fired since ``since``: once each, none left behind (``grace`` seconds late)."""
    result = Timers()
    late = now - timedelta(seconds=grace)
    sla = list(session.scalars(select(SlaTimer).where(SlaTimer.kind.in_(SLA_KINDS))))
    for timer in sla:
        if timer.warned_at is not None and timer.warned_at >= since:
            result.warnings += 1
        if timer.breached_at is not None and timer.breached_at >= since:
            result.breaches += 1
            if timer.warned_at is None:
                result.overtaken_warnings += 1
        if timer.status is TimerStatus.ACTIVE and timer.fire_at is not None:
            if timer.fire_at < late:
                result.skipped += 1
            else:
                result.not_yet_due += 1
    result.fired = result.warnings + result.breaches
    result.due = result.fired + result.skipped
    # a timer fired twice alarms its recipients twice: per ticket, kind and agent, no more
    # alarms than the ticket's timers fired
    expected: dict[tuple[int, str], int] = Counter()
    for timer in sla:
        if timer.warned_at is not None and timer.warned_at >= since:
            expected[(timer.ticket_id, "sla_warning")] += 1
        if timer.breached_at is not None and timer.breached_at >= since:
            expected[(timer.ticket_id, "sla_breach")] += 1
    alarms = session.execute(
        select(Notification.ticket_id, Notification.kind, Notification.agent_id,
               func.count()).where(Notification.created_at >= since,
                                   Notification.kind.in_(("sla_warning", "sla_breach")))
        .group_by(Notification.ticket_id, Notification.kind, Notification.agent_id)).all()
    for ticket_id, kind, _agent, count in alarms:
        result.doubled += max(0, count - expected.get((ticket_id, kind), 0))
    return result


def render(report: Report) -> str:
    head = (f"{'fault':<24} {'secs':>5} {'hit':>5} {'answered':>8} {'apology+ticket':>14} "
            f"{'to ticket':>9} {'lost':>5} {'silent':>6} {'dup':>4} {'reord':>5}")
    lines = [head, "-" * len(head)]
    for r in report.rows:
        lines.append(f"{r.fault:<24} {r.seconds:>5.0f} {r.turns_hit:>5} {r.answered:>8} "
                     f"{r.apologised_ticket:>14} {r.to_ticket_thread:>9} {r.lost:>5} "
                     f"{r.silent:>6} {r.duplicated:>4} {r.reordered:>5}")
    t = report.timers
    lines.append(f"conversations {report.conversations}: sent {report.sent}, stored "
                 f"{report.stored}, answered {report.answered}; routes {report.routes}; "
                 f"undelivered rows {report.undelivered_rows}, redelivered frames "
                 f"{report.redelivered_frames}; retried after 'unavailable' "
                 f"{report.unavailable_retries}, reconnected mid-turn {report.reconnects}, "
                 f"deferred to the replay {report.deferred}, no handled frame "
                 f"{report.no_handled_frame}, sent again unconfirmed "
                 f"{report.unconfirmed_resends}")
    lines.append(f"SLA timers: due {t.due}, fired {t.fired} ({t.warnings} warnings, "
                 f"{t.breaches} breaches, {t.overtaken_warnings} warnings overtaken by their "
                 f"deadline), skipped {t.skipped}, doubled {t.doubled}, not yet due {t.not_yet_due}")
    return "\n".join(lines)
