"""A batch of rows of one kind, in one transaction, each row on its own.

The caller opens the transaction (one per batch: the API per request, the CSV importer per
chunk of lines) and commits it. A refused row changes nothing (its notices included) while the
rows around it go on. Each row gets a result: its index, its key, what happened
(``change.Status``) and, for a refused row, the error's code, message and field. Nothing from
a row's content but its key is ever repeated back.

How, cheaply: the batch first reads what it needs in bulk (``lookups``: a few statements for
the whole batch instead of ~7 per row). Every upsert checks all that can refuse its row before
it changes anything, so a refused row has nothing to undo and the rows need no SAVEPOINT each:
they share one, and their writes go to the database together at its end (one INSERT for many
rows). Only a database refusal is left, a unique key written by another request after the
pre-read (two feeds racing): the shared SAVEPOINT is rolled back and the batch is done again
row by row, each row in its own SAVEPOINT with fresh locked reads (:func:`ingest_row`), where
the racing record is found and updated, or the row alone is refused with ``key_taken``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core.errors import BatchTooLarge, KefuError, KeyTaken, ValidationError
import ticketing.shop.ingest.customers as customers
import ticketing.shop.ingest.orders as orders
import ticketing.shop.ingest.products as products
import ticketing.shop.ingest.refunds as refunds
import ticketing.shop.ingest.shipments as shipments
from ticketing.shop.ingest.change import Context, Status
from ticketing.shop.ingest.lookups import Lookups
from ticketing.shop.ingest.rows import (
    CustomerRow,
    OrderRow,
    ProductRow,
    RefundRow,
    ShipmentRow,
    parse,
)

MAX_ROWS = 1000
KEY_MAX = 64

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Entity(Generic[R]):
    """One kind of record: its row model, the field that keys it, what its rows read in bulk
    and its upsert."""

    name: str
    model: type[R]
    key_field: str
    preload: Callable[[Lookups, Sequence[R], Context], None]
    upsert: Callable[[Session, R, Context, Lookups], Status]


ENTITIES: dict[str, Entity[Any]] = {
    entity.name: entity for entity in (
        Entity("products", ProductRow, "external_id", products.preload,
               lambda s, row, ctx, known: products.upsert_product(s, row, ctx=ctx, known=known)),
        Entity("customers", CustomerRow, "external_id", customers.preload,
               lambda s, row, ctx, known: customers.upsert_customer(s, row, ctx=ctx,
                                                                    known=known)),
        Entity("orders", OrderRow, "number", orders.preload,
               lambda s, row, ctx, known: orders.upsert_order(s, row, ctx=ctx, known=known)),
        Entity("shipments", ShipmentRow, "external_id", shipments.preload,
               lambda s, row, ctx, known: shipments.upsert_shipment(s, row, ctx=ctx,
                                                                    known=known)),
        Entity("refunds", RefundRow, "external_id", refunds.preload,
               lambda s, row, ctx, known: refunds.upsert_refund(s, row, ctx=ctx, known=known)),
    )
}


@dataclass(frozen=True)
class RowError:
    code: str
    message: str  # the specific reason, naming the field, never its value
    field: str | None = None


@dataclass(frozen=True)
class RowResult:
    index: int
    key: str | None
    status: Status
    error: RowError | None = None


@dataclass(frozen=True)
class BatchReport:
    entity: str
    results: list[RowResult] = field(default_factory=list)
    replayed: bool = False  # a racing writer made the batch go again row by row

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (for the audit row and the response)."""
        counted = Counter(result.status.value for result in self.results)
        return {status.value: counted.get(status.value, 0) for status in Status}


def entity(name: str) -> Entity[Any]:
    try:
        return ENTITIES[name]
    except KeyError:
        raise ValidationError(f"unknown kind of record {name!r}", field="entity") from None


def _key(raw: object, key_field: str) -> str | None:
    value = raw.get(key_field) if isinstance(raw, Mapping) else None
    return value.strip() if isinstance(value, str) and 0 < len(value.strip()) <= KEY_MAX else None


def _refused(index: int, key: str | None, error: KefuError) -> RowResult:
    field_name = error.context.get("field")
    return RowResult(index, key, Status.ERROR, RowError(
        error.code, error.detail, field_name if isinstance(field_name, str) else None))


def ingest_row(session: Session, kind: Entity[Any], raw: Mapping[str, Any] | Any, *,
               index: int, ctx: Context) -> RowResult:
    """Validate and upsert one row in its own SAVEPOINT, with its own locked reads; a refusal
    is a result, not a raise."""
    key = _key(raw, kind.key_field)
    try:
        row = parse(kind.model, raw)
        with session.begin_nested():
            known = Lookups(session)
            kind.preload(known, [row], ctx)
            status = kind.upsert(session, row, ctx, known)
    except KefuError as error:
        return _refused(index, key, error)
    except IntegrityError:  # a racing batch wrote the same key between our read and write
        taken = KeyTaken("another request wrote this record at the same moment; send it again")
        return RowResult(index, key, Status.ERROR, RowError(taken.code, taken.detail))
    return RowResult(index, key, status)


def _parsed(kind: Entity[Any], raw: Any) -> BaseModel | KefuError:
    try:
        return parse(kind.model, raw)
    except KefuError as error:
        return error


def _together(session: Session, kind: Entity[Any], raws: Sequence[Any], ctx: Context,
              known: Lookups) -> list[RowResult]:
    """Every row under one SAVEPOINT, reading ``known``; IntegrityError when the database
    refuses what they wrote (then nothing of them is left)."""
    parsed = [_parsed(kind, raw) for raw in raws]
    kind.preload(known, [row for row in parsed if isinstance(row, BaseModel)], ctx)
    results = []
    with session.begin_nested():
        for index, (raw, row) in enumerate(zip(raws, parsed)):
            key = _key(raw, kind.key_field)
            if isinstance(row, KefuError):
                results.append(_refused(index, key, row))
                continue
            try:
                results.append(RowResult(index, key, kind.upsert(session, row, ctx, known)))
            except KefuError as error:  # raised before the row changed anything
                results.append(_refused(index, key, error))
    return results


def run_batch(session: Session, *, entity_name: str, rows: Sequence[Any], ctx: Context,
              known: Lookups | None = None) -> BatchReport:
    """Ingest up to :data:`MAX_ROWS` rows of one kind in the caller's transaction.

    ``known`` is a pre-read to start from (a test passes one made before another writer's
    insert, to play a race); by default the batch reads its own."""
    kind = entity(entity_name)
    if len(rows) > MAX_ROWS:
        raise BatchTooLarge(f"a batch holds at most {MAX_ROWS} rows, not {len(rows)}",
                            field="rows")
    try:
        return BatchReport(kind.name, _together(session, kind, rows, ctx,
                                                known or Lookups(session)))
    except IntegrityError:  # another request wrote one of these keys after the pre-read
        return BatchReport(kind.name, [ingest_row(session, kind, raw, index=index, ctx=ctx)
                                       for index, raw in enumerate(rows)], replayed=True)
