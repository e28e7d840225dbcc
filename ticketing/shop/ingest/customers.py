"""Customers from the shop (rules §SEG-1, §SEC-3): segment, language, phone and address.

Keyed by the shop's external id. Phone and address are encrypted before they reach the
session and compared without being stored in clear; a phone is matched by its keyed hash. A
customer Kefu already knows by phone but not by external id (created before the shop was
connected) is adopted rather than duplicated; a phone that belongs to another shop customer is
refused. Errors name the field, never the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ticketing.core.errors import InvalidPhone, KeyTaken, ValidationError
from ticketing.core.i18n import normalize_language
from ticketing.core.models import Customer, Segment
from ticketing.core.pii import PiiCipher, normalize_phone
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.lookups import CUSTOMER, PHONE, Lookups
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


def _lookup(ctx: Context, phone: str | None) -> str | None:
    return ctx.cipher.lookup_hash(phone) if phone is not None else None


def preload(known: Lookups, rows: Sequence[CustomerRow], ctx: Context) -> None:
    """The batch's customers (locked) and every customer holding one of its phones."""
    known.preload(CUSTOMER, (row.external_id for row in rows))
    phones = []
    for row in rows:
        try:
            phones.append(_lookup(ctx, normalized_phone(row.phone)) if row.phone else None)
        except InvalidPhone:
            continue  # the row is refused before it looks
    known.preload(PHONE, phones)


def _find(known: Lookups, row: CustomerRow, lookup: str | None) -> Customer | None:
    """The customer of this external id, else one known only by this phone (adopted)."""
    customer = known.one(CUSTOMER, row.external_id)
    if lookup is None:
        return customer
    others = [other for other in known.many(PHONE, lookup) if other is not customer]
    if customer is None and others and others[0].external_id is None:
        return others[0]
    if others:
        raise KeyTaken("the phone belongs to another customer", field="phone")
    return customer


def upsert_customer(session: Session, row: CustomerRow, *, ctx: Context, known: Lookups
                    ) -> Status:
    """Create, adopt or update one customer; PII encrypted on the way in. Everything that can
    refuse the row is checked before the first change."""
    phone = normalized_phone(row.phone) if row.phone is not None else None
    lookup = _lookup(ctx, phone)
    customer = _find(known, row, lookup)
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
        known.remember(CUSTOMER, customer)
        known.remember(PHONE, customer)
        return Status.CREATED
    new_address = "address" in given and not _same_secret(ctx.cipher, customer.address_enc,
                                                          row.address, "address")
    adopted = customer.external_id is None
    if adopted:
        customer.external_id = row.external_id
        known.remember(CUSTOMER, customer)
    changed = assign(customer, values) or adopted
    if "phone" in given and customer.phone_lookup != lookup:
        customer.phone_lookup = lookup
        customer.phone_enc = None if phone is None else ctx.cipher.encrypt(phone, field="phone")
        known.remember(PHONE, customer)
        changed = True
    if new_address:
        customer.address_enc = None if row.address is None else ctx.cipher.encrypt(
            row.address, field="address")
        changed = True
    customer.source_updated_at = newest(customer.source_updated_at, row.updated_at)
    return Status.UPDATED if changed else Status.UNCHANGED
