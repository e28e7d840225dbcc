"""Shipments and their tracking scans from the shop (rules §ORD-2).

Keyed by the shop's external id; the tracking number stays unique. Scans accumulate: a row
adds the scans Kefu does not have yet (matched by their external id, else by time and status)
and corrects the wording of those it has; a scan missing from a later row is not deleted
(carriers only ever add). A new shipment tells the customer it shipped; a delivery (the
shipment's ``delivered_at`` or a ``delivered`` scan) that it arrived; each new ``exception``
scan that there is a problem, each once and only while fresh (``Context.is_fresh``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.errors import IllegalTransition, KeyTaken, OrderNotFound
from ticketing.core.i18n import Text
from ticketing.core.models import Order, Shipment, TrackingEvent
import ticketing.shop.ingest.notices as notices
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.rows import ShipmentRow, TrackingEventRow
from ticketing.shop.orders import parse_order_number

DEFAULT_PROMISE = timedelta(days=3)  # promised delivery when the shop states none

# a scan's description when the shop sends none: the status in plain words
STATUS_WORDS: dict[str, Text] = {
    "picked_up": Text("快递员已揽收", "Picked up by the carrier"),
    "in_transit": Text("运输中", "In transit"),
    "out_for_delivery": Text("派送中", "Out for delivery"),
    "delivered": Text("已签收", "Delivered"),
    "exception": Text("快递异常", "Delivery problem"),
}


def order_by_number(session: Session, raw: str) -> Order:
    """The order a shipment or refund row names; OrderNotFound when the shop never sent it."""
    order = session.scalars(select(Order).where(Order.number == parse_order_number(raw))
                            .with_for_update()).one_or_none()
    if order is None:
        raise OrderNotFound("order is not a known order number", field="order")
    return order


def _both(zh: str | None, en: str | None, fallback: Text | None = None) -> tuple[str, str]:
    """Both languages, each filled from the other (or ``fallback``) when the shop sent one."""
    zh, en = zh or "", en or ""
    if fallback is not None and not zh and not en:
        return fallback.zh, fallback.en
    return zh or en, en or zh


def _event_values(event: TrackingEventRow) -> dict[str, object]:
    location_zh, location_en = _both(event.location_zh, event.location_en)
    description_zh, description_en = _both(event.description_zh, event.description_en,
                                           STATUS_WORDS[event.status])
    return {"at": utc(event.at), "status": event.status, "location_zh": location_zh,
            "location_en": location_en, "description_zh": description_zh,
            "description_en": description_en}


def _merge_events(session: Session, shipment: Shipment, rows: list[TrackingEventRow]
                  ) -> tuple[bool, list[TrackingEvent]]:
    """(anything changed, the scans that are new)."""
    stored = list(session.scalars(select(TrackingEvent)
                                  .where(TrackingEvent.shipment_id == shipment.id)))
    by_id = {e.external_id: e for e in stored if e.external_id is not None}
    by_moment = {(utc(e.at), e.status): e for e in stored}
    changed, added = False, []
    for row in rows:
        values = _event_values(row)
        found = by_id.get(row.external_id) if row.external_id else None
        found = found or by_moment.get((values["at"], row.status))
        if found is not None:
            changed |= assign(found, values)
            if row.external_id and found.external_id is None:
                found.external_id, changed = row.external_id, True
            continue
        if row.external_id:
            taken = session.scalar(select(TrackingEvent.id)
                                   .where(TrackingEvent.external_id == row.external_id))
            if taken is not None:
                raise KeyTaken("a tracking event id belongs to another shipment",
                               field="events.external_id")
        event = TrackingEvent(shipment_id=shipment.id, external_id=row.external_id, **values)
        session.add(event)
        by_moment[(values["at"], row.status)] = event
        added.append(event)
        changed = True
    session.flush()
    return changed, added


def _delivered_at(shipment: Shipment, added: list[TrackingEvent]) -> datetime | None:
    scans = [e.at for e in added if e.status == "delivered"]
    return shipment.delivered_at or (min(scans) if scans else None)


def upsert_shipment(session: Session, row: ShipmentRow, *, ctx: Context) -> Status:
    """Create or update one shipment and add its new scans; tell the customer what matters."""
    shipment = session.scalars(select(Shipment).where(Shipment.external_id == row.external_id)
                               .with_for_update()).one_or_none()
    if shipment is not None and is_stale(shipment.source_updated_at, row.updated_at):
        return Status.STALE
    order = order_by_number(session, row.order)
    if shipment is not None and shipment.order_id != order.id:
        raise IllegalTransition("a shipment cannot move to another order", field="order")
    owner = session.scalar(select(Shipment.id).where(Shipment.tracking_number ==
                                                     row.tracking_number))
    if owner is not None and (shipment is None or owner != shipment.id):
        raise KeyTaken("the tracking number belongs to another shipment",
                       field="tracking_number")
    values = {
        "carrier": row.carrier.upper(), "tracking_number": row.tracking_number,
        "shipped_at": utc(row.shipped_at),
        "promised_by": utc(row.promised_by or row.shipped_at + DEFAULT_PROMISE),
        "delivered_at": None if row.delivered_at is None else utc(row.delivered_at),
    }
    created = shipment is None
    was_delivered = shipment is not None and shipment.delivered_at is not None
    if shipment is None:
        shipment = Shipment(order_id=order.id, external_id=row.external_id,
                            source_updated_at=utc(row.updated_at), **values)
        session.add(shipment)
        session.flush()
        changed = True
    else:
        changed = assign(shipment, values)
        shipment.source_updated_at = newest(shipment.source_updated_at, row.updated_at)
    events_changed, added = _merge_events(session, shipment, row.events)
    _tell(session, ctx, order, shipment, created=created, was_delivered=was_delivered,
          added=added)
    if created:
        return Status.CREATED
    return Status.UPDATED if changed or events_changed else Status.UNCHANGED


def _tell(session: Session, ctx: Context, order: Order, shipment: Shipment, *, created: bool,
          was_delivered: bool, added: list[TrackingEvent]) -> None:
    if created and ctx.is_fresh(shipment.shipped_at):
        notices.shipped(session, customer_id=order.customer_id, order_id=order.id,
                        number=order.number, carrier=shipment.carrier,
                        tracking_number=shipment.tracking_number, now=ctx.now)
    for event in added:
        if event.status == "exception" and ctx.is_fresh(event.at):
            notices.parcel_problem(session, customer_id=order.customer_id, event_id=event.id,
                                   number=order.number, now=ctx.now,
                                   what=Text(event.description_zh, event.description_en))
    delivered_at = _delivered_at(shipment, added)
    if delivered_at is not None and not was_delivered and ctx.is_fresh(delivered_at):
        notices.delivered(session, customer_id=order.customer_id, order_id=order.id,
                          number=order.number, now=ctx.now)
