"""What the shop may read back of its records through Kefu, keyed as the shop keys them.

Phones and addresses come back masked (rules §SEC-4): the shop knows them already, and a
read token that leaks must not leak them. These are plain dicts shaped like the API's
response models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.errors import CustomerNotFound, NotFound, OrderNotFound
from ticketing.core.models import (
    Customer,
    Order,
    Product,
    RefundRequest,
    Shipment,
    TrackingEvent,
)
from ticketing.core.pii import PiiCipher, mask_address
from ticketing.shop.customers import masked_address, masked_phone
from ticketing.shop.orders import parse_order_number


def product_view(session: Session, *, external_id: str) -> dict[str, Any]:
    product = session.scalars(select(Product).where(Product.external_id == external_id)).first()
    if product is None:
        raise NotFound("no product with this external id")
    return {
        "external_id": product.external_id, "sku": product.sku, "name_zh": product.name_zh,
        "name_en": product.name_en, "aliases": list(product.aliases or []),
        "category": product.category, "specs": dict(product.specs or {}),
        "price_cents": product.price_cents, "stock": product.stock,
        "low_stock_threshold": product.low_stock_threshold,
        "no_reason_return_7d": product.no_reason_return_7d,
        "delivery_zh": product.delivery_zh, "delivery_en": product.delivery_en,
        "updated_at": product.source_updated_at,
    }


def customer_view(session: Session, *, external_id: str, cipher: PiiCipher) -> dict[str, Any]:
    customer = session.scalars(select(Customer).where(Customer.external_id == external_id)
                               ).first()
    if customer is None:
        raise CustomerNotFound()
    return {
        "external_id": customer.external_id, "name": customer.name,
        "segment": customer.segment.value, "language": customer.language,
        "phone": masked_phone(customer, cipher=cipher),
        "address": masked_address(customer, cipher=cipher),
        "shipping_notices_opt_out": customer.shipping_notices_opt_out,
        "updated_at": customer.source_updated_at,
    }


def _shipment(session: Session, shipment: Shipment) -> dict[str, Any]:
    events = session.scalars(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment.id)
                             .order_by(TrackingEvent.at, TrackingEvent.id))
    return {
        "external_id": shipment.external_id, "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number, "shipped_at": shipment.shipped_at,
        "promised_by": shipment.promised_by, "delivered_at": shipment.delivered_at,
        "updated_at": shipment.source_updated_at,
        "events": [{"external_id": e.external_id, "at": e.at, "status": e.status,
                    "location_zh": e.location_zh, "location_en": e.location_en,
                    "description_zh": e.description_zh, "description_en": e.description_en}
                   for e in events],
    }


def order_view(session: Session, *, number: str, cipher: PiiCipher) -> dict[str, Any]:
    """The order with its items, shipments (and scans) and refunds."""
    order = session.scalars(select(Order).where(Order.number == parse_order_number(number))
                            ).first()
    if order is None:
        raise OrderNotFound()
    customer = session.get(Customer, order.customer_id)
    products = {p.id: p for p in session.scalars(select(Product).where(
        Product.id.in_([item.product_id for item in order.items])))}
    shipments = session.scalars(select(Shipment).where(Shipment.order_id == order.id)
                                .order_by(Shipment.shipped_at, Shipment.id))
    refunds = session.scalars(select(RefundRequest).where(RefundRequest.order_id == order.id)
                              .order_by(RefundRequest.id))
    address = None if order.address_enc is None else mask_address(
        cipher.decrypt(order.address_enc, field="address"))
    return {
        "number": order.number,
        "customer": customer.external_id if customer is not None else None,
        "state": order.state.value, "total_cents": order.total_cents,
        "paid_cents": order.paid_cents, "refunded_cents": order.refunded_cents,
        "payment_method": order.payment_method, "address": address,
        "created_at": order.created_at, "paid_at": order.paid_at,
        "shipped_at": order.shipped_at, "delivered_at": order.delivered_at,
        "completed_at": order.completed_at, "cancelled_at": order.cancelled_at,
        "updated_at": order.source_updated_at,
        "items": [{"product": (products[item.product_id].external_id
                               or products[item.product_id].sku)
                   if item.product_id in products else None,
                   "quantity": item.quantity, "unit_price_cents": item.unit_price_cents}
                  for item in order.items],
        "shipments": [_shipment(session, shipment) for shipment in shipments],
        "refunds": [{"external_id": r.external_id, "state": r.state.value,
                     "amount_cents": r.amount_cents, "reason": r.reason,
                     "method": r.method.value, "created_at": r.created_at,
                     "done_at": r.done_at} for r in refunds],
    }
