"""The customer card beside a ticket (or alone on ``/customers/{id}``), and the refunds lists.

The caller has already checked the customer (``access.require_customer``) or the ticket against
the viewer; the card is read in a fixed number of statements whatever the customer's history.

Personal data: phones and addresses only ever leave masked (rules §SEC-4); revealing one is
the supervisors' audited action in ``routes/customers.py``. Refunds are decided only by their
reviewers (rules §REF-1); who those are is decided here, for the page and the refunds routes.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.models import (
    Agent,
    ChannelIdentity,
    Customer,
    Order,
    RefundRequest,
    RefundState,
    Role,
    Shipment,
    Survey,
    Team,
    Ticket,
    TrackingEvent,
)
from ticketing.core.money import format_amount
from ticketing.desk import access, canned_replies
from ticketing.shop import customers as customer_service
from ticketing.shop import logistics, orders
from ticketing.shop.refunds import rules as refund_rules
from ticketing.web.queries.page_view import View, enum_value
from ticketing.web.queries.ticket_models import (
    CustomerCard,
    IdentityOut,
    OrderOut,
    PastTicketOut,
    RefundOut,
    TrackingOut,
)

REFUND_CATEGORY = "refund"
RECENT_ORDERS = 5
PAST_TICKETS = 10
RECENT_REFUNDS = 10


# --- who handles refunds -------------------------------------------------------------------------
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


# --- the card ------------------------------------------------------------------------------------
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
    segment = enum_value(customer.segment)
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
            id=o.id, number=o.number, state=enum_value(o.state),
            state_label=orders.state_name(o.state, language=language),
            total=format_amount(o.total_cents), refunded=format_amount(o.refunded_cents or 0),
            created=view.moment(o.created_at), tracking=tracking.get(o.id)) for o in recent],
        refunds=[refund_out(view, r, number) for r, number in refund_rows],
        tickets=[PastTicketOut(
            id=t.id if t.id in visible else None, number=t.number,
            subject=t.subject if t.id in visible else None, state=enum_value(t.state),
            state_label=view.label("state", enum_value(t.state)),
            category_label=view.label("category", enum_value(t.category)),
            created=view.moment(t.created_at), csat_score=scores.get(t.id)) for t in past],
    )


# --- the refunds lists ---------------------------------------------------------------------------
def refunds_in_state(session: Session, *, view: View, state: RefundState,
                     limit: int = 100) -> list[RefundOut]:
    rows = session.execute(
        select(RefundRequest, Order.number).join(Order, Order.id == RefundRequest.order_id)
        .where(RefundRequest.state == state)
        .order_by(RefundRequest.created_at, RefundRequest.id).limit(limit)).tuples().all()
    return [refund_out(view, refund, number) for refund, number in rows]
