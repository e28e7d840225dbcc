"""The agent's queues: which tickets wait for whom, most urgent first (read only).

Queues (every one inside :func:`ticketing.desk.access.visible_tickets` of the person asking):

- ``mine``: tickets I own or help with (assignee), still new, open or waiting on the customer;
- ``team``: unclaimed new tickets I may see (those my team serves at its tier; a supervisor's
  include lower tiers, a manager's every one);
- ``waiting``: mine, waiting on the customer (their SLA clocks are paused);
- ``escalated``: tickets escalated to me (I am the assignee), still live;
- ``solved``: mine, solved in the last 7 days, newest first;
- ``all``: every live ticket I may see (supervisors, managers and admins only);
- ``search``: every ticket I may see, in any state: what the search box looks through.

Rows come nearest running SLA deadline first (tickets with no running deadline last), then by
priority (urgent first), then oldest first. A page costs three statements whatever its size:
the rows (with their total), the live SLA timers of those rows, and their last messages.

Search ``q``: a ticket number (``T`` + digits), an order number (16–19 digits, any spelling
:func:`ticketing.shop.orders.parse_order_number` accepts), a phone (11+ digits, matched
exactly through the keyed lookup hash: phones are never decrypted to search), else text: a
case-insensitive substring of the subject or of any message of the thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement, and_, case, exists, false, func, nulls_last, or_, select, true,
)
from sqlalchemy.orm import Session, aliased

from ticketing.core.clock import aware, utcnow
from ticketing.core.errors import (
    ConfigurationError,
    CryptoError,
    InvalidOrderNumber,
    NotFound,
    ValidationError,
)
from ticketing.core.models import (
    Agent,
    Category,
    Channel,
    Customer,
    Order,
    Priority,
    Role,
    Segment,
    SlaTimer,
    Ticket,
    TicketMessage,
    TicketState,
    Tier,
    TimerKind,
    TimerStatus,
)
from ticketing.core.pii import PiiCipher, normalize_phone
from ticketing.desk import access
from ticketing.shop import customers, orders

MINE, TEAM, WAITING, ESCALATED, SOLVED, ALL, SEARCH = (
    "mine", "team", "waiting", "escalated", "solved", "all", "search")
WORKER_QUEUES = (MINE, TEAM, WAITING, ESCALATED, SOLVED)
SUPERVISOR_QUEUES = (*WORKER_QUEUES, ALL)
READER_QUEUES = (ALL, TEAM)  # managers and admins own nothing: everything, and the unclaimed
NAMES = (*SUPERVISOR_QUEUES, SEARCH)

LIVE_STATES = (TicketState.NEW, TicketState.OPEN, TicketState.WAITING_CUSTOMER)
SOLVED_WITHIN = timedelta(days=7)
SLA_KINDS = (TimerKind.FIRST_RESPONSE, TimerKind.NEXT_RESPONSE, TimerKind.RESOLUTION)
RUNNING = (TimerStatus.ACTIVE, TimerStatus.PAUSED)
PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PREVIEW_CHARS = 80
MAX_QUERY_CHARS = 200

_TICKET_NUMBER = re.compile(r"^[Tt]\d{6,}$")
_PHONE_SPELLING = re.compile(r"^\+?[\d\s\-()]+$")
_PHONE_MIN_DIGITS = 11


# --- which queues --------------------------------------------------------------------------------
def queues_for(agent: Agent) -> tuple[str, ...]:
    """The tabs ``agent`` gets, in order; the first is their home queue."""
    if access.reads_everything(agent):
        return READER_QUEUES
    if agent.role is Role.SUPERVISOR:
        return SUPERVISOR_QUEUES
    return WORKER_QUEUES


def check_queue(agent: Agent, name: str) -> str:
    """``name`` if ``agent`` has that queue (or ``search``); otherwise NotFound."""
    if name == SEARCH or name in queues_for(agent):
        return name
    raise NotFound("no such queue", queue=name)


def _condition(name: str, agent: Agent, now: datetime) -> ColumnElement[bool]:
    mine = or_(Ticket.owner_id == agent.id, Ticket.assignee_id == agent.id)
    live = Ticket.state.in_(LIVE_STATES)
    if name == MINE:
        return and_(mine, live)
    if name == TEAM:
        return and_(Ticket.owner_id.is_(None), Ticket.state == TicketState.NEW)
    if name == WAITING:
        return and_(mine, Ticket.state == TicketState.WAITING_CUSTOMER)
    if name == ESCALATED:
        return and_(Ticket.assignee_id == agent.id, live)
    if name == SOLVED:
        return and_(mine, Ticket.state.in_((TicketState.SOLVED, TicketState.CLOSED)),
                    Ticket.solved_at >= now - SOLVED_WITHIN)
    if name == ALL:
        return live
    if name == SEARCH:
        return true()
    raise NotFound("no such queue", queue=name)


def _visible(session: Session, agent: Agent) -> ColumnElement[bool]:
    """``access.visible_tickets``, with the agent's team held by the agent: the identity map
    keeps rows only while referenced, so a page's second lookup of the team costs nothing."""
    _ = agent.team
    return access.visible_tickets(session, agent)


# --- filters and search --------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """What narrows a queue; every field optional. Build it with :func:`parse_filters`."""

    category: Category | None = None
    priority: Priority | None = None
    tier: int | None = None
    channel: Channel | None = None
    state: TicketState | None = None
    q: str | None = None

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters (empty ones left out), for links and forms."""
        values = {"category": self.category, "priority": self.priority, "tier": self.tier,
                  "channel": self.channel, "state": self.state, "q": self.q}
        return {k: str(getattr(v, "value", v)) for k, v in values.items() if v not in (None, "")}


def _enum(kind: type, name: str, value: str | None):  # noqa: ANN202 - the enum member or None
    if value is None or not str(value).strip():
        return None
    try:
        return kind(str(value).strip())
    except ValueError:
        raise ValidationError(f"{name} must be one of {[m.value for m in kind]}",
                              field=name) from None


def parse_filters(
    *, category: str | None = None, priority: str | None = None, tier: str | int | None = None,
    channel: str | None = None, state: str | None = None, q: str | None = None,
) -> Filters:
    """Filters from request values ('' means no filter); a bad value is a ValidationError."""
    tier_value = None
    if tier is not None and str(tier).strip():
        try:
            tier_value = Tier(int(str(tier).strip())).value
        except ValueError:
            raise ValidationError(f"tier must be one of {[t.value for t in Tier]}",
                                  field="tier") from None
    query = (q or "").strip()
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationError(f"a search is at most {MAX_QUERY_CHARS} characters", field="q")
    return Filters(
        category=_enum(Category, "category", category),
        priority=_enum(Priority, "priority", priority),
        tier=tier_value,
        channel=_enum(Channel, "channel", channel),
        state=_enum(TicketState, "state", state),
        q=query or None,
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_condition(session: Session, q: str, *, cipher: PiiCipher) -> ColumnElement[bool]:
    """The tickets ``q`` finds (see the module docstring); visibility is applied by the caller."""
    q = q.strip()
    if _TICKET_NUMBER.match(q):
        return Ticket.number == q.upper()
    try:
        number = orders.parse_order_number(q)
    except InvalidOrderNumber:
        number = None
    if number is not None:
        return Ticket.order_id.in_(select(Order.id).where(Order.number == number))
    if _PHONE_SPELLING.match(q):
        try:
            digits = normalize_phone(q)
        except ValidationError:
            digits = None
        if digits is not None and len(digits) >= _PHONE_MIN_DIGITS:
            try:
                customer = customers.find_by_phone(session, cipher=cipher, phone=digits)
            except CryptoError:
                customer = None
            return Ticket.customer_id == customer.id if customer is not None else false()
    pattern = _like_pattern(q)
    in_thread = exists(select(TicketMessage.id).where(
        TicketMessage.ticket_id == Ticket.id,
        TicketMessage.body.ilike(pattern, escape="\\")))
    return or_(Ticket.subject.ilike(pattern, escape="\\"), in_thread)


def _filter_conditions(session: Session, filters: Filters,
                       cipher: PiiCipher | None) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if filters.category is not None:
        found.append(Ticket.category == filters.category)
    if filters.priority is not None:
        found.append(Ticket.priority == filters.priority)
    if filters.tier is not None:
        found.append(Ticket.tier == filters.tier)
    if filters.channel is not None:
        found.append(Ticket.channel == filters.channel)
    if filters.state is not None:
        found.append(Ticket.state == filters.state)
    if filters.q:
        if cipher is None:
            raise ConfigurationError("searching needs the PII cipher")  # a wiring mistake
        found.append(search_condition(session, filters.q, cipher=cipher))
    return found


# --- what a row shows ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Deadline:
    """One live SLA clock of a ticket: running toward ``deadline_at``, or paused with
    ``remaining_seconds`` of business time left."""

    kind: TimerKind
    status: TimerStatus
    deadline_at: datetime | None
    remaining_seconds: float | None
    breached: bool

    @property
    def paused(self) -> bool:
        return self.status is TimerStatus.PAUSED


@dataclass(frozen=True)
class Preview:
    """The latest message the customer can see (never an internal note), cut short."""

    text: str
    author_type: str
    at: datetime


@dataclass(frozen=True)
class QueueRow:
    id: int
    number: str
    subject: str
    state: TicketState
    priority: Priority
    tier: int
    category: Category
    channel: Channel
    language: str
    vip: bool
    customer_name: str
    owner_name: str | None
    assignee_name: str | None
    flags: tuple[str, ...]
    created_at: datetime
    solved_at: datetime | None
    next_deadline: datetime | None
    deadlines: tuple[Deadline, ...] = ()
    last_message: Preview | None = None


@dataclass(frozen=True)
class QueuePage:
    queue: str
    rows: list[QueueRow]
    total: int
    limit: int
    offset: int
    filters: Filters = field(default_factory=Filters)

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.rows) < self.total


# --- the queries ---------------------------------------------------------------------------------
def counts(session: Session, *, agent: Agent, now: datetime | None = None) -> dict[str, int]:
    """How many tickets each of ``agent``'s queues holds, in one statement."""
    now = now or utcnow()
    names = queues_for(agent)
    conditions = [_condition(name, agent, now) for name in names]
    totals = [func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
              for condition in conditions]
    row = session.execute(
        select(*totals).select_from(Ticket)
        .where(_visible(session, agent), or_(*conditions))
    ).one()
    return {name: int(value or 0) for name, value in zip(names, row)}


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise ValidationError("offset must not be negative", field="offset")


def queue_rows(
    session: Session, *, agent: Agent, queue: str, filters: Filters | None = None,
    cipher: PiiCipher | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0,
    now: datetime | None = None,
) -> QueuePage:
    """One page of ``queue`` for ``agent``, narrowed by ``filters``; NotFound for a queue the
    agent does not have, ValidationError for a bad page. ``cipher`` is needed to search."""
    now = now or utcnow()
    filters = filters or Filters()
    check_queue(agent, queue)
    _check_page(limit, offset)
    owner, assignee = aliased(Agent), aliased(Agent)
    next_at = (
        select(func.min(SlaTimer.deadline_at))
        .where(SlaTimer.ticket_id == Ticket.id, SlaTimer.kind.in_(SLA_KINDS),
               SlaTimer.status == TimerStatus.ACTIVE)
        .correlate(Ticket).scalar_subquery().label("next_at")
    )
    rank = case(*[(Ticket.priority == p, r) for p, r in PRIORITY_RANK.items()], else_=9)
    stmt = (
        select(Ticket.id, Ticket.number, Ticket.subject, Ticket.state, Ticket.priority,
               Ticket.tier, Ticket.category, Ticket.channel, Ticket.language, Ticket.flags,
               Ticket.created_at, Ticket.solved_at, Customer.name.label("customer_name"),
               Customer.segment.label("segment"), owner.display_name.label("owner_name"),
               assignee.display_name.label("assignee_name"), next_at,
               func.count().over().label("total"))
        .join(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(owner, owner.id == Ticket.owner_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .where(_visible(session, agent), _condition(queue, agent, now),
               *_filter_conditions(session, filters, cipher))
    )
    if queue == SOLVED:
        stmt = stmt.order_by(Ticket.solved_at.desc(), Ticket.id.desc())
    else:
        stmt = stmt.order_by(nulls_last(next_at.asc()), rank, Ticket.created_at, Ticket.id)
    found = session.execute(stmt.limit(limit).offset(offset)).all()
    total = int(found[0].total) if found else 0
    if not found and offset > 0:  # past the end: the total still tells where the end is
        total = session.scalar(
            select(func.count()).select_from(stmt.order_by(None).limit(None).offset(None)
                                             .subquery())) or 0
    ids = [r.id for r in found]
    deadlines = _deadlines(session, ids, now)
    previews = _previews(session, ids)
    rows = [
        QueueRow(
            id=r.id, number=r.number, subject=r.subject, state=r.state, priority=r.priority,
            tier=r.tier, category=r.category, channel=r.channel, language=r.language,
            vip=r.segment is Segment.VIP, customer_name=r.customer_name,
            owner_name=r.owner_name, assignee_name=r.assignee_name, flags=tuple(r.flags or ()),
            created_at=r.created_at, solved_at=r.solved_at, next_deadline=r.next_at,
            deadlines=deadlines.get(r.id, ()), last_message=previews.get(r.id))
        for r in found
    ]
    return QueuePage(queue=queue, rows=rows, total=total, limit=limit, offset=offset,
                     filters=filters)


def _deadlines(session: Session, ids: Sequence[int], now: datetime
               ) -> dict[int, tuple[Deadline, ...]]:
    """The live SLA clocks of ``ids``, one per kind (the newest generation), in one query."""
    if not ids:
        return {}
    latest: dict[tuple[int, TimerKind], Deadline] = {}
    for t in session.execute(
        select(SlaTimer.ticket_id, SlaTimer.kind, SlaTimer.status, SlaTimer.deadline_at,
               SlaTimer.remaining_seconds, SlaTimer.breached_at)
        .where(SlaTimer.ticket_id.in_(ids), SlaTimer.kind.in_(SLA_KINDS),
               SlaTimer.status.in_(RUNNING))
        .order_by(SlaTimer.ticket_id, SlaTimer.generation)
    ):
        paused = t.status is TimerStatus.PAUSED
        deadline = None if paused or t.deadline_at is None else aware(t.deadline_at)
        breached = t.breached_at is not None or (deadline is not None and deadline <= now) or (
            paused and (t.remaining_seconds or 0) <= 0)
        latest[(t.ticket_id, t.kind)] = Deadline(
            kind=t.kind, status=t.status, deadline_at=deadline,
            remaining_seconds=t.remaining_seconds if paused else None, breached=breached)
    by_ticket: dict[int, list[Deadline]] = {}
    order = {kind: n for n, kind in enumerate(SLA_KINDS)}
    for (ticket_id, _), deadline in sorted(latest.items(), key=lambda kv: (kv[0][0],
                                                                          order[kv[0][1]])):
        by_ticket.setdefault(ticket_id, []).append(deadline)
    return {ticket_id: tuple(found) for ticket_id, found in by_ticket.items()}


def _previews(session: Session, ids: Sequence[int]) -> dict[int, Preview]:
    """The newest non-internal message of each of ``ids``, at most 80 characters, one query."""
    if not ids:
        return {}
    newest = (select(func.max(TicketMessage.id))
              .where(TicketMessage.ticket_id.in_(ids), TicketMessage.internal == false())
              .group_by(TicketMessage.ticket_id))
    previews = {}
    for m in session.execute(
        select(TicketMessage.ticket_id, func.substr(TicketMessage.body, 1, PREVIEW_CHARS + 1),
               TicketMessage.author_type, TicketMessage.at)
        .where(TicketMessage.id.in_(newest))
    ):
        raw = m[1] or ""
        text = " ".join(raw.split())
        if len(raw) > PREVIEW_CHARS or len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS - 1].rstrip() + "…"
        previews[m.ticket_id] = Preview(text=text, author_type=m.author_type, at=aware(m.at))
    return previews
