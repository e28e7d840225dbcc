"""A batch of rows of one kind, in one transaction, each row on its own.

The caller opens the transaction (one per batch: the API per request, the CSV importer per
chunk of lines) and commits it; every row runs in a SAVEPOINT, so a refused row changes
nothing (its notices included) while the rows around it go on. Each row gets a result: its
index, its key, what happened (``change.Status``) and, for a refused row, the error's code,
message and field. Nothing from a row's content but its key is ever repeated back.
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
from ticketing.shop.ingest.change import Context, Status
from ticketing.shop.ingest.customers import upsert_customer
from ticketing.shop.ingest.orders import upsert_order
from ticketing.shop.ingest.products import upsert_product
from ticketing.shop.ingest.refunds import upsert_refund
from ticketing.shop.ingest.rows import (
    CustomerRow,
    OrderRow,
    ProductRow,
    RefundRow,
    ShipmentRow,
    parse,
)
from ticketing.shop.ingest.shipments import upsert_shipment

MAX_ROWS = 1000
KEY_MAX = 64

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Entity(Generic[R]):
    """One kind of record: its row model, the field that keys it, and its upsert."""

    name: str
    model: type[R]
    key_field: str
    upsert: Callable[[Session, R, Context], Status]


ENTITIES: dict[str, Entity[Any]] = {
    entity.name: entity for entity in (
        Entity("products", ProductRow, "external_id",
               lambda s, row, ctx: upsert_product(s, row, ctx=ctx)),
        Entity("customers", CustomerRow, "external_id",
               lambda s, row, ctx: upsert_customer(s, row, ctx=ctx)),
        Entity("orders", OrderRow, "number", lambda s, row, ctx: upsert_order(s, row, ctx=ctx)),
        Entity("shipments", ShipmentRow, "external_id",
               lambda s, row, ctx: upsert_shipment(s, row, ctx=ctx)),
        Entity("refunds", RefundRow, "external_id",
               lambda s, row, ctx: upsert_refund(s, row, ctx=ctx)),
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


def ingest_row(session: Session, kind: Entity[Any], raw: Mapping[str, Any] | Any, *,
               index: int, ctx: Context) -> RowResult:
    """Validate and upsert one row in its own SAVEPOINT; a refusal is a result, not a raise."""
    key = _key(raw, kind.key_field)
    try:
        row = parse(kind.model, raw)
        with session.begin_nested():
            status = kind.upsert(session, row, ctx)
    except KefuError as error:
        field_name = error.context.get("field")
        return RowResult(index, key, Status.ERROR, RowError(
            error.code, error.detail, field_name if isinstance(field_name, str) else None))
    except IntegrityError:  # a racing batch wrote the same key between our read and write
        taken = KeyTaken("another request wrote this record at the same moment; send it again")
        return RowResult(index, key, Status.ERROR, RowError(taken.code, taken.detail))
    return RowResult(index, key, status)


def run_batch(session: Session, *, entity_name: str, rows: Sequence[Any], ctx: Context
              ) -> BatchReport:
    """Ingest up to :data:`MAX_ROWS` rows of one kind in the caller's transaction."""
    kind = entity(entity_name)
    if len(rows) > MAX_ROWS:
        raise BatchTooLarge(f"a batch holds at most {MAX_ROWS} rows, not {len(rows)}",
                            field="rows")
    report = BatchReport(kind.name)
    for index, raw in enumerate(rows):
        report.results.append(ingest_row(session, kind, raw, index=index, ctx=ctx))
    return report
