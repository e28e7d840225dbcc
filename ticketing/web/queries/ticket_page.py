"""What the ticket page and ``/api/v1/tickets/{id}`` show: one ticket, read for one person.

The caller has already checked the ticket (``access.require_ticket``) or the customer
(``access.require_customer``) against the viewer; this module only reads, in a fixed number of
statements per page. Every model here is both the JSON API's response model and what the
templates render, so the page and the API never disagree.

Personal data: phones and addresses only ever leave masked (rules §SEC-4); revealing one is
the supervisors' audited action in ``routes/customers.py``. Times are in the shop's zone
(``core.local_time``), with the UTC instant alongside for machines (``data-deadline``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core import local_time
from ticketing.core.clock import aware
from ticketing.core.errors import NotFound
from ticketing.core.models import (
    Agent,
    ChannelIdentity,
    Customer,
    Order,
    OutboxMessage,
    RefundRequest,
    RefundState,
    Role,
    Shipment,
    SlaTimer,
    Survey,
    Team,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketState,
    TimerStatus,
    TrackingEvent,
)
from ticketing.core.money import format_amount
from ticketing.core.pii import PiiCipher
from ticketing.desk import access, canned_replies, lifecycle, ownership, sla
from ticketing.shop import customers as customer_service
from ticketing.shop import logistics, orders
from ticketing.shop.refunds import rules as refund_rules
from ticketing.web.texts import ui

REFUND_CATEGORY = "refund"
REPLY_MATCH_WINDOW = timedelta(minutes=5)  # an outbox row is queued in the reply's transaction
RECENT_ORDERS = 5
PAST_TICKETS = 10
RECENT_REFUNDS = 10


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"
    message_zh = "没有找到这个附件。"
    message_en = "That attachment was not found."


# --- the models (JSON API responses and template context) ---------------------------------------
class AgentRef(BaseModel):
    id: int
    name: str


class Moment(BaseModel):
    """An instant: UTC ISO for machines, the shop's local time for people."""

    at: datetime
    local: str


class AttachmentOut(BaseModel):
    index: int
    kind: str
    url: str | None  # None: the file never reached the server (only the channel's reference)


class DeliveryOut(BaseModel):
    """Where an agent reply stands in the outbox: ``pending``, ``delivered`` or ``failed``."""

    state: Literal["pending", "delivered", "failed"]
    label: str
    attempts: int
    delivered: Moment | None = None


class MessageOut(BaseModel):
    id: int
    at: Moment
    author_type: str  # customer | bot | agent | system
    author: str
    body: str
    internal: bool
    attachments: list[AttachmentOut]
    delivery: DeliveryOut | None = None


class EventOut(BaseModel):
    id: int
    at: Moment
    kind: str
    label: str
    actor_type: str
    actor: str
    from_value: str | None
    to_value: str | None
    change: str | None  # from → to as people read it
    reason: str | None
    data: dict[str, Any]


class TimerOut(BaseModel):
    id: int
    kind: str
    label: str
    generation: int
    status: str  # active | paused | done
    status_label: str
    deadline: Moment | None
    remaining: str | None  # business time left while paused
    breached: bool
    warned: bool


class TicketOut(BaseModel):
    id: int
    number: str
    subject: str
    state: str
    state_label: str
    category: str
    category_label: str
    priority: str
    priority_label: str
    tier: int
    channel: str
    language: str
    flags: list[str]
    owner: AgentRef | None
    assignee: AgentRef | None
    team: str | None
    customer_id: int
    order_id: int | None
    resolution: str | None
    created: Moment
    solved: Moment | None
    next_deadline: Moment | None
    version: int


class IdentityOut(BaseModel):
    channel: str
    verified: bool
    handed_off_ticket_id: int | None


class TrackingOut(BaseModel):
    carrier: str
    tracking_number: str
    status: str | None
    description: str | None
    location: str | None
    at: Moment | None


class OrderOut(BaseModel):
    id: int
    number: str
    state: str
    state_label: str
    total: str
    refunded: str
    created: Moment
    tracking: TrackingOut | None


class RefundOut(BaseModel):
    id: int
    order_id: int
    order_number: str
    customer_id: int
    state: str
    state_label: str
    amount: str
    amount_cents: int
    reason: str
    reason_label: str
    reason_text: str
    created: Moment
    rejection_reason: str | None
    ticket_id: int | None


class PastTicketOut(BaseModel):
    """Another ticket of the customer; subject and link only when the viewer may open it."""

    id: int | None
    number: str
    subject: str | None
    state: str
    state_label: str
    category_label: str
    created: Moment
    csat_score: int | None


class CustomerCard(BaseModel):
    id: int
    name: str
    guest: bool
    segment: str
    segment_label: str
    language: str
    phone: str | None  # masked
    address: str | None  # masked
    identities: list[IdentityOut]
    orders: list[OrderOut]
    refunds: list[RefundOut]
    tickets: list[PastTicketOut]


class Permissions(BaseModel):
    """What the viewer may do here; the services check again on every write."""

    claim: bool
    work: bool  # reply, note, wait, solve, escalate, reopen (as the state allows)
    transfer: bool
    reveal: bool
    review_refunds: bool


class CannedOut(BaseModel):
    key: str
    title: str
    body: str


class TicketDetail(BaseModel):
    ticket: TicketOut
    thread: list[MessageOut]
    events: list[EventOut]
    timers: list[TimerOut]
    customer: CustomerCard
    permissions: Permissions
    actions: list[str]  # the actions the state and the viewer allow right now


# --- helpers -------------------------------------------------------------------------------------
class View:
    """Who reads, in which language and zone: what every formatting step needs."""

    def __init__(self, session: Session, *, viewer: Agent, language: str, timezone: str,
                 cipher: PiiCipher, now: datetime) -> None:
        self.session, self.viewer, self.language = session, viewer, language
        self.timezone, self.cipher, self.now = timezone, cipher, now

    def moment(self, value: datetime | None) -> Moment | None:
        if value is None:
            return None
        return Moment(at=aware(value),
                      local=local_time.date_time(value, timezone=self.timezone))

    def label(self, group: str, value: str) -> str:
        return ui(f"ticket.{group}.{value}", self.language)


def _value(member: object) -> str:
    return str(getattr(member, "value", member))


def agent_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(
        select(Agent.id, Agent.display_name).where(Agent.id.in_(wanted))).tuples().all())


def _duration(seconds: float | None, language: str) -> str | None:
    if seconds is None:
        return None
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    return ui("ticket.duration", language).format(hours=hours, minutes=minutes)


def reviews_refunds(session: Session, agent: Agent) -> bool:
    """Supervisors, and agents of a team that serves refunds by name (after-sales): a team
    serving every category (``*``, the frontline) answers questions about refunds but does
    not decide them (rules §REF-1: review)."""
    if agent.role is Role.SUPERVISOR:
        return True
    if agent.role is not Role.AGENT or agent.team_id is None:
        return False
    team = session.get(Team, agent.team_id)
    return team is not None and REFUND_CATEGORY in (team.categories or [])


def reads_refunds(session: Session, agent: Agent) -> bool:
    """Reviewers, and managers and admins (they read everything)."""
    return access.reads_everything(agent) or reviews_refunds(session, agent)


# --- the ticket ----------------------------------------------------------------------------------
def ticket_out(view: View, ticket: Ticket, names: dict[int, str]) -> TicketOut:
    session = view.session
    team_name = None
    if ticket.team_id is not None:
        team = session.get(Team, ticket.team_id)
        if team is not None:
            team_name = team.name_zh if view.language == "zh" else team.name_en

    def ref(agent_id: int | None) -> AgentRef | None:
        return None if agent_id is None else AgentRef(id=agent_id, name=names.get(agent_id, "?"))

    return TicketOut(
        id=ticket.id, number=ticket.number, subject=ticket.subject,
        state=_value(ticket.state), state_label=view.label("state", _value(ticket.state)),
        category=_value(ticket.category),
        category_label=view.label("category", _value(ticket.category)),
        priority=_value(ticket.priority),
        priority_label=view.label("priority", _value(ticket.priority)),
        tier=ticket.tier, channel=_value(ticket.channel), language=ticket.language,
        flags=list(ticket.flags or []), owner=ref(ticket.owner_id),
        assignee=ref(ticket.assignee_id), team=team_name, customer_id=ticket.customer_id,
        order_id=ticket.order_id, resolution=ticket.resolution,
        created=view.moment(ticket.created_at), solved=view.moment(ticket.solved_at),
        next_deadline=view.moment(sla.next_deadline(session, ticket=ticket)),
        version=ticket.version,
    )


def attachment_url(ticket_id: int, message_id: int, index: int) -> str:
    return f"/tickets/{ticket_id}/attachments/{message_id}/{index}"


def _stored_file(attachment: dict[str, Any]) -> str | None:
    """The stored file's name under the attachments directory, from its content hash only."""
    digest = attachment.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    if any(ch not in "0123456789abcdef" for ch in digest):
        return None
    return f"{digest}.jpg"


def _deliveries(view: View, ticket: Ticket,
                messages: list[TicketMessage]) -> dict[int, DeliveryOut]:
    """Each public agent reply matched to its outbox row (same ticket, same text, queued in the
    same transaction), in order; no schema link is needed."""
    rows = list(view.session.scalars(
        select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id,
                                    OutboxMessage.kind == "agent_reply")
        .order_by(OutboxMessage.created_at, OutboxMessage.id)))
    found: dict[int, DeliveryOut] = {}
    for message in messages:
        if message.author_type != "agent" or message.internal:
            continue
        for row in rows:
            if row.text == message.body and \
                    abs(aware(row.created_at) - aware(message.at)) <= REPLY_MATCH_WINDOW:
                rows.remove(row)
                if row.delivered_at is not None:
                    state = "delivered"
                elif (row.attempts or 0) > 0:
                    state = "failed"
                else:
                    state = "pending"
                found[message.id] = DeliveryOut(
                    state=state, label=view.label("delivery", state), attempts=row.attempts or 0,
                    delivered=view.moment(row.delivered_at))
                break
    return found


def thread(view: View, ticket: Ticket, names: dict[int, str],
           customer: Customer) -> list[MessageOut]:
    messages = list(view.session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
        .order_by(TicketMessage.at, TicketMessage.id)))
    deliveries = _deliveries(view, ticket, messages)
    out = []
    for message in messages:
        if message.author_type == "agent":
            author = names.get(message.author_id or 0, view.label("author", "agent"))
        elif message.author_type == "customer":
            author = canned_replies.customer_name(customer) or view.label("author", "customer")
        else:
            author = view.label("author", message.author_type)
        attachments = [
            AttachmentOut(index=i, kind=str(a.get("kind") or "file"),
                          url=attachment_url(ticket.id, message.id, i)
                          if _stored_file(a) else None)
            for i, a in enumerate(message.attachments or []) if isinstance(a, dict)]
        out.append(MessageOut(
            id=message.id, at=view.moment(message.at), author_type=message.author_type,
            author=author, body=message.body, internal=bool(message.internal),
            attachments=attachments, delivery=deliveries.get(message.id)))
    return out


STATE_EVENTS = frozenset({"created", "claimed", "state_changed", "solved", "reopened",
                          "closed"})


def _change(view: View, event: TicketEvent, names: dict[int, str]) -> str | None:
    """``from → to`` as people read it: state names, tiers, owners' names."""
    if event.from_value is None and event.to_value is None:
        return None

    def shown(value: str | None) -> str:
        if value is None:
            return "–"
        if event.kind in STATE_EVENTS:
            return view.label("state", value)
        if event.kind == "escalated":
            return f"L{value}"
        if event.kind == "transferred" and value.isdigit():
            return names.get(int(value), value)
        return value

    if event.from_value is None:
        return shown(event.to_value)
    return f"{shown(event.from_value)} → {shown(event.to_value)}"


def events(view: View, ticket: Ticket, names: dict[int, str],
           customer: Customer) -> list[EventOut]:
    rows = list(view.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.at, TicketEvent.id)))
    out = []
    for event in rows:
        if event.actor_type == "agent":
            actor = names.get(event.actor_id or 0, view.label("author", "agent"))
        elif event.actor_type == "customer":
            actor = canned_replies.customer_name(customer) or view.label("author", "customer")
        else:
            actor = view.label("author", event.actor_type)
        out.append(EventOut(
            id=event.id, at=view.moment(event.at), kind=event.kind,
            label=view.label("event", event.kind), actor_type=event.actor_type, actor=actor,
            from_value=event.from_value, to_value=event.to_value,
            change=_change(view, event, names), reason=event.reason,
            data=dict(event.data or {})))
    return out


def timers(view: View, ticket: Ticket) -> list[TimerOut]:
    rows = list(view.session.scalars(
        select(SlaTimer).where(SlaTimer.ticket_id == ticket.id)
        .order_by(SlaTimer.started_at, SlaTimer.id)))
    out = []
    for timer in rows:
        status = _value(timer.status)
        out.append(TimerOut(
            id=timer.id, kind=_value(timer.kind),
            label=sla.KIND_NAMES[timer.kind].get(view.language), generation=timer.generation,
            status=status, status_label=view.label("timer", status),
            deadline=view.moment(timer.deadline_at) if timer.status is not TimerStatus.PAUSED
            else None,
            remaining=_duration(timer.remaining_seconds, view.language)
            if timer.status is TimerStatus.PAUSED else None,
            breached=timer.breached_at is not None, warned=timer.warned_at is not None))
    return out


# --- the customer --------------------------------------------------------------------------------
def _tracking(view: View, order_ids: list[int]) -> dict[int, TrackingOut]:
    """The newest shipment of each order with its latest scan: two statements in all."""
    if not order_ids:
        return {}
    shipments: dict[int, Shipment] = {}
    for shipment in view.session.scalars(
            select(Shipment).where(Shipment.order_id.in_(order_ids))
            .order_by(Shipment.shipped_at, Shipment.id)):
        shipments[shipment.order_id] = shipment  # the newest wins
    latest: dict[int, TrackingEvent] = {}
    if shipments:
        for scan in view.session.scalars(
                select(TrackingEvent)
                .where(TrackingEvent.shipment_id.in_([s.id for s in shipments.values()]))
                .order_by(TrackingEvent.at, TrackingEvent.id)):
            latest[scan.shipment_id] = scan
    zh = view.language == "zh"
    out = {}
    for order_id, shipment in shipments.items():
        scan = latest.get(shipment.id)
        out[order_id] = TrackingOut(
            carrier=logistics.carrier_name(shipment.carrier, language=view.language),
            tracking_number=shipment.tracking_number,
            status=scan.status if scan else None,
            description=(scan.description_zh if zh else scan.description_en) if scan else None,
            location=(scan.location_zh if zh else scan.location_en) if scan else None,
            at=view.moment(scan.at) if scan else None)
    return out


def refund_out(view: View, refund: RefundRequest, order_number: str) -> RefundOut:
    state = refund.state if isinstance(refund.state, RefundState) else RefundState(refund.state)
    return RefundOut(
        id=refund.id, order_id=refund.order_id, order_number=order_number,
        customer_id=refund.customer_id, state=state.value,
        state_label=refund_rules.STATE_LABELS[state].get(view.language),
        amount=format_amount(refund.amount_cents), amount_cents=refund.amount_cents,
        reason=refund.reason, reason_label=refund_rules.reason_label(refund.reason, view.language),
        reason_text=refund.reason_text or "", created=view.moment(refund.created_at),
        rejection_reason=refund.rejection_reason, ticket_id=refund.ticket_id)


def customer_card(view: View, customer: Customer, *, exclude_ticket: int | None = None
                  ) -> CustomerCard:
    """Segment, masked contact, channel identities, recent orders with their latest scan,
    refunds, and the customer's tickets with their CSAT (linked only where the viewer may
    open them)."""
    session, language = view.session, view.language
    identities = list(session.scalars(
        select(ChannelIdentity).where(ChannelIdentity.customer_id == customer.id)
        .order_by(ChannelIdentity.id)))
    recent = orders.recent_orders(session, customer_id=customer.id, limit=RECENT_ORDERS)
    tracking = _tracking(view, [o.id for o in recent])
    refund_rows = session.execute(
        select(RefundRequest, Order.number).join(Order, Order.id == RefundRequest.order_id)
        .where(RefundRequest.customer_id == customer.id)
        .order_by(RefundRequest.created_at.desc(), RefundRequest.id.desc())
        .limit(RECENT_REFUNDS)).tuples().all()
    past = list(session.scalars(
        select(Ticket).where(Ticket.customer_id == customer.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(PAST_TICKETS + 1)))
    past = [t for t in past if t.id != exclude_ticket][:PAST_TICKETS]
    ids = [t.id for t in past]
    visible = set(session.scalars(
        select(Ticket.id).where(Ticket.id.in_(ids),
                                access.visible_tickets(session, view.viewer)))) if ids else set()
    scores = dict(session.execute(
        select(Survey.ticket_id, Survey.score).where(Survey.ticket_id.in_(ids))
    ).tuples().all()) if ids else {}
    segment = _value(customer.segment)
    return CustomerCard(
        id=customer.id, name=canned_replies.customer_name(customer)
        or view.label("author", "guest"),
        guest=canned_replies.customer_name(customer) is None,
        segment=segment, segment_label=view.label("segment", segment),
        language=customer.language,
        phone=customer_service.masked_phone(customer, cipher=view.cipher),
        address=customer_service.masked_address(customer, cipher=view.cipher),
        identities=[IdentityOut(channel=i.channel, verified=i.verified_at is not None,
                                handed_off_ticket_id=i.handed_off_ticket_id) for i in identities],
        orders=[OrderOut(
            id=o.id, number=o.number, state=_value(o.state),
            state_label=orders.state_name(o.state, language=language),
            total=format_amount(o.total_cents), refunded=format_amount(o.refunded_cents or 0),
            created=view.moment(o.created_at), tracking=tracking.get(o.id)) for o in recent],
        refunds=[refund_out(view, r, number) for r, number in refund_rows],
        tickets=[PastTicketOut(
            id=t.id if t.id in visible else None, number=t.number,
            subject=t.subject if t.id in visible else None, state=_value(t.state),
            state_label=view.label("state", _value(t.state)),
            category_label=view.label("category", _value(t.category)),
            created=view.moment(t.created_at), csat_score=scores.get(t.id)) for t in past],
    )


# --- the page ------------------------------------------------------------------------------------
def permissions(view: View, ticket: Ticket) -> Permissions:
    viewer = view.viewer
    works = access.works_tickets(viewer)
    worker = works and (viewer.id in (ticket.owner_id, ticket.assignee_id)
                        or ownership.is_supervisor(viewer))
    return Permissions(
        claim=works and ticket.owner_id is None and ticket.state is TicketState.NEW,
        work=worker,
        transfer=works and ticket.state is not TicketState.CLOSED
        and (viewer.id == ticket.owner_id or ownership.is_supervisor(viewer)),
        reveal=viewer.role is Role.SUPERVISOR,
        review_refunds=reviews_refunds(view.session, viewer),
    )


def actions(ticket: Ticket, allowed: Permissions) -> list[str]:
    """The actions offered now: what the viewer may do and the state allows."""
    found = []
    if allowed.claim:
        found.append("claim")
    if allowed.work and ticket.state is not TicketState.CLOSED:
        found += ["reply", "note"]
        if ticket.state in lifecycle.ACTIVE_STATES and ticket.tier < 3:
            found.append("escalate")
        if TicketState.WAITING_CUSTOMER in lifecycle.ALLOWED[ticket.state]:
            found.append("wait")
        if TicketState.SOLVED in lifecycle.ALLOWED[ticket.state]:
            found.append("solve")
        if ticket.state is TicketState.SOLVED:
            found.append("reopen")
    if allowed.transfer:
        found.append("transfer")
    return found


def ticket_detail(session: Session, *, ticket: Ticket, viewer: Agent, cipher: PiiCipher,
                  language: str, timezone: str, now: datetime) -> TicketDetail:
    view = View(session, viewer=viewer, language=language, timezone=timezone, cipher=cipher,
                now=now)
    customer = session.get(Customer, ticket.customer_id)
    assert customer is not None  # a foreign key
    author_ids = session.scalars(
        select(TicketMessage.author_id).where(TicketMessage.ticket_id == ticket.id,
                                              TicketMessage.author_type == "agent")).all()
    actor_ids = session.scalars(
        select(TicketEvent.actor_id).where(TicketEvent.ticket_id == ticket.id,
                                           TicketEvent.actor_type == "agent")).all()
    transfer_ids = [int(v) for v in session.scalars(
        select(TicketEvent.from_value).where(TicketEvent.ticket_id == ticket.id,
                                             TicketEvent.kind == "transferred")
        .union_all(select(TicketEvent.to_value).where(TicketEvent.ticket_id == ticket.id,
                                                      TicketEvent.kind == "transferred")))
        if v and v.isdigit()]
    names = agent_names(session, [ticket.owner_id, ticket.assignee_id, *author_ids, *actor_ids,
                                   *transfer_ids])
    allowed = permissions(view, ticket)
    return TicketDetail(
        ticket=ticket_out(view, ticket, names),
        thread=thread(view, ticket, names, customer),
        events=events(view, ticket, names, customer),
        timers=timers(view, ticket),
        customer=customer_card(view, customer, exclude_ticket=ticket.id),
        permissions=allowed,
        actions=actions(ticket, allowed),
    )


def owner_name(session: Session, ticket_id: int) -> str | None:
    """Who owns the ticket now (read in a fresh transaction after a lost claim)."""
    return session.scalar(
        select(Agent.display_name).join(Ticket, Ticket.owner_id == Agent.id)
        .where(Ticket.id == ticket_id))


def transfer_targets(session: Session, *, ticket: Ticket, language: str
                     ) -> list[tuple[int, str]]:
    """Agents and supervisors a ticket may be handed to, team by team, the owner left out."""
    rows = session.execute(
        select(Agent.id, Agent.display_name, Team.name_zh, Team.name_en)
        .outerjoin(Team, Team.id == Agent.team_id)
        .where(Agent.role.in_(tuple(access.WORKERS)), Agent.active.is_(True))
        .order_by(Team.tier, Team.id, Agent.display_name, Agent.id)).tuples().all()
    return [(agent_id, f"{name} · {(zh if language == 'zh' else en) or '-'}")
            for agent_id, name, zh, en in rows if agent_id != ticket.owner_id]


def canned_options(session: Session, *, ticket: Ticket, viewer: Agent, language: str,
                   order: Order | None = None) -> list[CannedOut]:
    """Every canned reply, titled in the agent's language, rendered in the ticket's."""
    customer = session.get(Customer, ticket.customer_id)
    if order is None and ticket.order_id is not None:
        order = session.get(Order, ticket.order_id)
    replies = canned_replies.catalogue(session)
    return [CannedOut(key=key, title=title,
                      body=canned_replies.render(key, ticket=ticket, customer=customer,
                                                 order=order, agent=viewer, replies=replies))
            for key, title in canned_replies.options(language, replies)]


def attachment_file(session: Session, *, ticket: Ticket, message_id: int, index: int,
                    root: Path) -> Path:
    """The stored photo of message ``message_id``'s attachment ``index``, on ``ticket``.

    The path is never taken from the request or trusted from the row: the file is named by
    its content hash under ``root`` (``var/attachments/``), and must resolve inside it.
    """
    message = session.scalar(select(TicketMessage).where(TicketMessage.id == message_id,
                                                         TicketMessage.ticket_id == ticket.id))
    found = list(message.attachments or []) if message is not None else []
    if index < 0 or index >= len(found) or not isinstance(found[index], dict):
        raise AttachmentNotFound(message_id=message_id, index=index)
    name = _stored_file(found[index])
    if name is None:
        raise AttachmentNotFound(message_id=message_id, index=index)
    base = root.resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        raise AttachmentNotFound(message_id=message_id, index=index)
    return path


def refunds_in_state(session: Session, *, view: View, state: RefundState,
                     limit: int = 100) -> list[RefundOut]:
    rows = session.execute(
        select(RefundRequest, Order.number).join(Order, Order.id == RefundRequest.order_id)
        .where(RefundRequest.state == state)
        .order_by(RefundRequest.created_at, RefundRequest.id).limit(limit)).tuples().all()
    return [refund_out(view, refund, number) for refund, number in rows]

