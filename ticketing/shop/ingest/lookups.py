"""What Kefu already holds for the keys of one batch, read in a few statements before its rows.

A row needs the record it updates (locked ``FOR UPDATE``), the records it names (an order's
customer and products, a shipment's order) and whether a unique key (a SKU, a tracking number,
a scan id) is taken. Asked row by row that was about 7 statements an order; here each kind's
``preload`` asks once per table for all the keys of the batch (an ``IN`` list, locks taken in
id order), and the rows read the maps. What a row creates or re-keys it hands to
:meth:`Lookups.remember`, so a later row of the same batch sees it as a query would have.

The maps are a cache of this transaction's own view, not of other writers: a key absent at the
pre-read may be inserted by another request before this batch writes it. The unique constraint
then refuses the write and ``run_batch`` does the batch again row by row, each row with fresh
locked lookups (a ``Lookups`` of its own), as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from ticketing.core.errors import KefuError
from ticketing.core.models import Customer, Order, Product, RefundRequest, Shipment, TrackingEvent
from ticketing.shop.orders import parse_order_number

CHUNK = 1000  # keys per IN list (far below PostgreSQL's and SQLite's parameter limits)


@dataclass(frozen=True)
class Table:
    """How to read the records of some keys, and the key of a record."""

    query: Callable[[list[Any]], Select[Any]]
    key: Callable[[Any], Any]
    many: bool = False  # a key may belong to several records (a phone)
    rows: bool = False  # the query returns plain rows, not objects


def _locked(model: Any, column: Any, *options: Any) -> Callable[[list[Any]], Select[Any]]:
    return lambda keys: (select(model).where(column.in_(keys)).order_by(model.id)
                         .with_for_update().options(*options))


def _plain(model: Any, column: Any) -> Callable[[list[Any]], Select[Any]]:
    return lambda keys: select(model).where(column.in_(keys)).order_by(model.id)


# the record a row updates, locked as the row-by-row reads locked it
ORDER = Table(_locked(Order, Order.number), attrgetter("number"))
ORDER_WITH_ITEMS = Table(_locked(Order, Order.number, selectinload(Order.items)),
                         attrgetter("number"))
CUSTOMER = Table(_locked(Customer, Customer.external_id), attrgetter("external_id"))
PRODUCT = Table(_locked(Product, Product.external_id), attrgetter("external_id"))
SHIPMENT = Table(_locked(Shipment, Shipment.external_id, selectinload(Shipment.events)),
                 attrgetter("external_id"))
REFUND = Table(_locked(RefundRequest, RefundRequest.external_id), attrgetter("external_id"))
# what a row names or must not take, read without a lock (as before)
CUSTOMER_ID = Table(lambda keys: select(Customer.external_id, Customer.id)
                    .where(Customer.external_id.in_(keys)), attrgetter("external_id"), rows=True)
PHONE = Table(_plain(Customer, Customer.phone_lookup), attrgetter("phone_lookup"), many=True)
PRODUCT_REF = Table(_plain(Product, Product.external_id), attrgetter("external_id"))
SKU = Table(_plain(Product, Product.sku), attrgetter("sku"))
TRACKING = Table(_plain(Shipment, Shipment.tracking_number), attrgetter("tracking_number"))
SCAN = Table(_plain(TrackingEvent, TrackingEvent.external_id), attrgetter("external_id"))
ORDER_REFUNDS = Table(_plain(RefundRequest, RefundRequest.order_id), attrgetter("order_id"),
                      many=True)


def number_or_none(raw: str) -> str | None:
    """The order number to read, or None for one its row will be refused for."""
    try:
        return parse_order_number(raw)
    except KefuError:
        return None


def oldest_first(record: Any) -> tuple[bool, int]:
    """Oldest first, records not yet flushed last (in the order they were made)."""
    return record.id is None, record.id or 0


class Lookups:
    """Per table, key → record (``None``: known absent) for the keys read so far."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._maps: dict[Table, dict[Any, Any]] = {}

    def _map(self, table: Table) -> dict[Any, Any]:
        return self._maps.setdefault(table, {})

    def preload(self, table: Table, keys: Iterable[Any]) -> None:
        """Read the records of every key not read yet, ``CHUNK`` keys a statement."""
        known = self._map(table)
        wanted = sorted({key for key in keys if key is not None and key not in known})
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            for key in chunk:
                known[key] = [] if table.many else None
            result = self.session.execute(table.query(chunk))
            for record in (result.all() if table.rows else result.scalars().all()):
                if table.many:
                    known[table.key(record)].append(record)
                else:
                    known[table.key(record)] = record

    def one(self, table: Table, key: Any) -> Any:
        """The record holding ``key`` now, or None."""
        known = self._map(table)
        if key not in known:
            self.preload(table, [key])
        record = known.get(key)
        return record if record is not None and table.key(record) == key else None

    def many(self, table: Table, key: Any) -> list[Any]:
        """Every record holding ``key`` now, by id."""
        known = self._map(table)
        if key not in known:
            self.preload(table, [key])
        return sorted((r for r in known.get(key, ()) if table.key(r) == key), key=oldest_first)

    def remember(self, table: Table, record: Any) -> None:
        """``record`` was made or re-keyed by a row: later rows must find it by its key."""
        key = table.key(record)
        if key is None:
            return
        known = self._map(table)
        if not table.many:
            known[key] = record
            return
        if key not in known:  # read the other holders first
            self.preload(table, [key])
        holders = known[key]
        if not any(holder is record for holder in holders):
            holders.append(record)
