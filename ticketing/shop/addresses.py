"""Changing an order's delivery address before it ships (rules §ORD-3), done by the bot.

Only the customer's own order, only while it waits for payment or for shipping; the row lock
makes the check and the change one step, so an order that ships meanwhile is refused rather
than changed after the parcel left. The address is encrypted at rest and the audit keeps only
its masked region. Sending the same address again changes nothing and audits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import AddressLocked, InvalidAddress
from ticketing.core.models import Order, OrderState
from ticketing.core.pii import PiiCipher, mask_address
from ticketing.shop.orders import get_order

CHANGEABLE = (OrderState.PENDING_PAYMENT, OrderState.PAID)
MIN_CHARS, MAX_CHARS = 8, 200
CHANGED = "order.address_changed"


@dataclass(frozen=True)
class AddressChange:
    order: Order
    changed: bool  # False: it already was this address
    masked: str  # the new address as the customer may see it


def clean_address(text: str | None) -> str:
    """One line, trimmed; :class:`InvalidAddress` when too short or too long to be one."""
    address = " ".join((text or "").split())
    if not (MIN_CHARS <= len(address) <= MAX_CHARS) or not any(ch.isdigit() for ch in address):
        raise InvalidAddress(field="address")  # a real address has a door number or a phone
    return address


def change_delivery_address(session: Session, *, customer_id: int, number: str, address: str,
                            cipher: PiiCipher, now: datetime | None = None) -> AddressChange:
    """Set the unshipped order's delivery address; refused once it has shipped or ended."""
    address = clean_address(address)
    order = get_order(session, customer_id=customer_id, number=number, lock=True)
    if order.state not in CHANGEABLE:
        raise AddressLocked(state=order.state.value)
    before = None if order.address_enc is None else cipher.decrypt(order.address_enc,
                                                                   field="address")
    masked = mask_address(address)
    if before == address:
        return AddressChange(order, False, masked)
    order.address_enc = cipher.encrypt(address, field="address")
    audit.record(session, action=CHANGED, actor_type="customer", actor_id=customer_id,
                 target_type="order", target_id=order.number, now=now or utcnow(),
                 details={"before": None if before is None else mask_address(before),
                          "after": masked, "by": "assistant"})
    session.flush()
    return AddressChange(order, True, masked)
