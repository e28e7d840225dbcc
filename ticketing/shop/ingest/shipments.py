"""Shipments and their tracking scans from the shop (rules §ORD-2).

Keyed by the shop's external id; the tracking number stays unique. Scans accumulate: a row
adds the scans Kefu does not have yet (matched by their external id, else by time and status)
and corrects the wording of those it has; a scan missing from a later row is not deleted
(carriers only ever add). A new shipment tells the customer it shipped; a delivery (the
shipment's ``delivered_at`` or a ``delivered`` scan) that it arrived; each new ``exception``
scan that there is a problem, each once and only while fresh (``Context.is_fresh``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ticketing.core.errors import IllegalTransition, KeyTaken, OrderNotFound
from ticketing.core.i18n import Text
from ticketing.core.models import Order, Shipment, TrackingEvent
import ticketing.shop.ingest.notices as notices
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.lookups import (
    ORDER,
    SCAN,
    SHIPMENT,
    TRACKING,
    Lookups,
    number_or_none,
    oldest_first,
)
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


def order_by_number(known: Lookups, raw: str) -> Order:
    """The order a shipment or refund row names (locked); OrderNotFound when the shop never
    sent it."""
    order = known.one(ORDER, parse_order_number(raw))
    if order is None:
        raise OrderNotFound("order is not a known order number", field="order")
    return order


def preload(known: Lookups, rows: Sequence[ShipmentRow], ctx: Context) -> None:
    """The batch's shipments (locked, with their scans) and orders (locked), and the holders
    of its tracking numbers and scan ids."""
    known.preload(SHIPMENT, (row.external_id for row in rows))
    known.preload(ORDER, (number_or_none(row.order) for row in rows))
    known.preload(TRACKING, (row.tracking_number for row in rows))
    known.preload(SCAN, (event.external_id for row in rows for event in row.events))


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


# per scan of a row: the scan it adds (values None) or updates, and a scan id to give it
ScanPlan = list[tuple[TrackingEvent, dict[str, object] | None, str | None]]


def _plan_scans(known: Lookups, stored: list[TrackingEvent], rows: list[TrackingEventRow]
                ) -> ScanPlan:
    """What the row's scans do, decided before anything is written: a scan Kefu has (by its
    id, else by time and status) is updated, another is added; KeyTaken when a new scan's id
    belongs to another shipment (or to another scan of this row)."""
    by_id = {e.external_id: e for e in stored if e.external_id is not None}
    by_moment = {(utc(e.at), e.status): e for e in stored}
    ids = {e: e.external_id for e in stored}  # each scan's id once the row is written
    plan: ScanPlan = []
    for row in rows:
        values = _event_values(row)
        found = by_id.get(row.external_id) if row.external_id else None
        found = found or by_moment.get((values["at"], row.status))
        if found is not None:
            rename = row.external_id if row.external_id and ids[found] is None else None
            if rename:
                ids[found] = rename
            plan.append((found, values, rename))
            continue
        if row.external_id and (row.external_id in ids.values()
                                or known.one(SCAN, row.external_id) is not None):
            raise KeyTaken("a tracking event id belongs to another shipment",
                           field="events.external_id")
        event = TrackingEvent(external_id=row.external_id, **values)
        ids[event] = row.external_id
        by_moment[(values["at"], row.status)] = event
        plan.append((event, None, None))
    return plan


def _write_scans(known: Lookups, shipment: Shipment, plan: ScanPlan
                 ) -> tuple[bool, list[TrackingEvent]]:
    """(anything changed, the scans that are new)."""
    changed, added = False, []
    for event, values, rename in plan:
        if values is None:
            shipment.events.append(event)
            added.append(event)
            changed = True
        else:
            changed |= assign(event, values)
        if rename:
            event.external_id, changed = rename, True
        known.remember(SCAN, event)
    return changed, added


def _delivered_at(shipment: Shipment, added: list[TrackingEvent]) -> datetime | None:
    scans = [e.at for e in added if e.status == "delivered"]
    return shipment.delivered_at or (min(scans) if scans else None)


def upsert_shipment(session: Session, row: ShipmentRow, *, ctx: Context, known: Lookups
                    ) -> Status:
    """Create or update one shipment and add its new scans; tell the customer what matters.
    Everything that can refuse the row is checked before the first change."""
    shipment = known.one(SHIPMENT, row.external_id)
    if shipment is not None and is_stale(shipment.source_updated_at, row.updated_at):
        return Status.STALE
    order = order_by_number(known, row.order)
    if shipment is not None and shipment.order_id != order.id:
        raise IllegalTransition("a shipment cannot move to another order", field="order")
    owner = known.one(TRACKING, row.tracking_number)
    if owner is not None and owner is not shipment:
        raise KeyTaken("the tracking number belongs to another shipment",
                       field="tracking_number")
    values = {
        "carrier": row.carrier.upper(), "tracking_number": row.tracking_number,
        "shipped_at": utc(row.shipped_at),
        "promised_by": utc(row.promised_by or row.shipped_at + DEFAULT_PROMISE),
        "delivered_at": None if row.delivered_at is None else utc(row.delivered_at),
    }
    stored = sorted(shipment.events, key=oldest_first) if shipment is not None else []
    plan = _plan_scans(known, stored, row.events)
    created = shipment is None
    was_delivered = shipment is not None and shipment.delivered_at is not None
    if shipment is None:
        shipment = Shipment(order_id=order.id, external_id=row.external_id,
                            source_updated_at=utc(row.updated_at), events=[], **values)
        session.add(shipment)
        known.remember(SHIPMENT, shipment)
        changed = True
    else:
        changed = assign(shipment, values)
        shipment.source_updated_at = newest(shipment.source_updated_at, row.updated_at)
    known.remember(TRACKING, shipment)
    events_changed, added = _write_scans(known, shipment, plan)
    _tell(session, ctx, order, shipment, created=created, was_delivered=was_delivered,
          added=added)
    if created:
        return Status.CREATED
    return Status.UPDATED if changed or events_changed else Status.UNCHANGED


def _tell(session: Session, ctx: Context, order: Order, shipment: Shipment, *, created: bool,
          was_delivered: bool, added: list[TrackingEvent]) -> None:
    shipped = created and ctx.is_fresh(shipment.shipped_at)
    problems = [e for e in added if e.status == "exception" and ctx.is_fresh(e.at)]
    delivered_at = _delivered_at(shipment, added)
    delivered = delivered_at is not None and not was_delivered and ctx.is_fresh(delivered_at)
    if not (shipped or problems or delivered):
        return
    session.flush()  # the notices' keys name the scans' ids
    if shipped:
        notices.shipped(session, customer_id=order.customer_id, order_id=order.id,
                        number=order.number, carrier=shipment.carrier,
                        tracking_number=shipment.tracking_number, now=ctx.now)
    for event in problems:
        notices.parcel_problem(session, customer_id=order.customer_id, event_id=event.id,
                               number=order.number, now=ctx.now,
                               what=Text(event.description_zh, event.description_en))
    if delivered:
        notices.delivered(session, customer_id=order.customer_id, order_id=order.id,
                          number=order.number, now=ctx.now)
