"""Customers from the shop (rules §SEG-1, §SEC-3): segment, language, phone and address.

Keyed by the shop's external id. Phone and address are encrypted before they reach the
session and compared without being stored in clear; a phone is matched by its keyed hash. A
customer Kefu already knows by phone but not by external id (created before the shop was
connected) is adopted rather than duplicated; a phone that belongs to another shop customer is
refused. Errors name the field, never the value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.errors import InvalidPhone, KeyTaken, ValidationError
from ticketing.core.i18n import normalize_language
from ticketing.core.models import Customer, Segment
from ticketing.core.pii import PiiCipher, normalize_phone
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.rows import CustomerRow


def normalized_phone(phone: str) -> str:
    """The digits Kefu stores, or InvalidPhone (which never repeats the number)."""
    try:
        return normalize_phone(phone)
    except ValidationError:
        raise InvalidPhone("phone is not a phone number", field="phone") from None


def _same_secret(cipher: PiiCipher, blob: bytes | None, value: str | None, field: str) -> bool:
    if blob is None or value is None:
        return blob is None and value is None
    return cipher.decrypt(blob, field=field) == value


def _find(session: Session, row: CustomerRow, lookup: str | None) -> Customer | None:
    """The customer of this external id, else one known only by this phone (adopted)."""
    customer = session.scalars(select(Customer).where(Customer.external_id == row.external_id)
                               .with_for_update()).one_or_none()
    if lookup is None:
        return customer
    others = [other for other in session.scalars(
        select(Customer).where(Customer.phone_lookup == lookup).order_by(Customer.id))
        if customer is None or other.id != customer.id]
    if customer is None and others and others[0].external_id is None:
        return others[0]
    if others:
        raise KeyTaken("the phone belongs to another customer", field="phone")
    return customer


def upsert_customer(session: Session, row: CustomerRow, *, ctx: Context) -> Status:
    """Create, adopt or update one customer; PII encrypted on the way in."""
    phone = normalized_phone(row.phone) if row.phone is not None else None
    lookup = ctx.cipher.lookup_hash(phone) if phone is not None else None
    customer = _find(session, row, lookup)
    given = row.model_fields_set  # phone/address absent: keep; given as null: erase
    if customer is not None and is_stale(customer.source_updated_at, row.updated_at):
        return Status.STALE
    values: dict[str, Any] = {"name": row.name}
    if row.segment is not None:
        values["segment"] = Segment(row.segment)
    if row.language is not None:
        values["language"] = normalize_language(row.language)
    if row.shipping_notices_opt_out is not None:
        values["shipping_notices_opt_out"] = row.shipping_notices_opt_out
    if customer is None:
        customer = Customer(
            external_id=row.external_id, source_updated_at=utc(row.updated_at),
            language=values.pop("language", "zh"), segment=values.pop("segment", Segment.REGULAR),
            phone_lookup=lookup, phone_enc=None if phone is None else ctx.cipher.encrypt(
                phone, field="phone"),
            address_enc=None if row.address is None else ctx.cipher.encrypt(
                row.address, field="address"),
            created_at=ctx.now, **values)
        session.add(customer)
        session.flush()
        return Status.CREATED
    adopted = customer.external_id is None
    if adopted:
        customer.external_id = row.external_id
    changed = assign(customer, values) or adopted
    if "phone" in given and customer.phone_lookup != lookup:
        customer.phone_lookup = lookup
        customer.phone_enc = None if phone is None else ctx.cipher.encrypt(phone, field="phone")
        changed = True
    if "address" in given and not _same_secret(ctx.cipher, customer.address_enc, row.address,
                                               "address"):
        customer.address_enc = None if row.address is None else ctx.cipher.encrypt(
            row.address, field="address")
        changed = True
    customer.source_updated_at = newest(customer.source_updated_at, row.updated_at)
    session.flush()
    return Status.UPDATED if changed else Status.UNCHANGED
