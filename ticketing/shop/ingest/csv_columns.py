"""How a shop's CSV file maps onto the rows the ingestion service takes (``rows.py``).

One header line names the columns; each column is a field of the kind's row model, so the
columns are the API's field names. A cell goes to the service as the text it is (the row
model turns ``"19900"`` into cents, ``"true"`` into a flag, an ISO time into a time), with
these exceptions, all documented in ``docs/integration.md``:

- an empty cell is an absent field (the default, or "keep what Kefu has"), never an empty text;
- lists (a product's ``aliases``) are ``a|b|c``, or a JSON array when a value holds a ``|``;
- a product's specs are two columns, ``specs_zh`` and ``specs_en``, each ``颜色=白色|尺寸=M``
  or a JSON object;
- records with children take one line per child, the record's own columns repeated: an order
  one line per item (``item_product``, ``item_quantity``, ``item_unit_price_cents``), as shop
  exports write them, a shipment one line per tracking scan (``event_at``, ``event_status``,
  …). The lines of one record follow each other; the first line's record columns count, and
  a later line may leave them empty or repeat them, but not contradict them;
- with a time zone given (``--timezone``), a time without an offset is read in that zone, as
  shop exports often write local times; without one it is refused, as the API refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from ticketing.shop.ingest.batch import ENTITIES

LIST_SEPARATOR = "|"
PAIR_SEPARATOR = "="
# the row fields that hold a time (rows.py: every AwareDatetime)
TIME_FIELDS = frozenset({"updated_at", "created_at", "paid_at", "shipped_at", "delivered_at",
                         "completed_at", "cancelled_at", "promised_by", "done_at", "at"})


class CellError(ValueError):
    """A cell that cannot become a field (bad JSON, a pair without ``=``): the line's error."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Layout:
    """The columns of one kind: record columns, and the child columns of a line, if any."""

    kind: str
    key: str  # the column that keys a record (orders: number)
    fields: tuple[str, ...]  # record columns, in template order
    required: frozenset[str]  # columns the header must have
    child: str | None = None  # "items" / "events": the list a line adds one entry to
    child_prefix: str = ""
    child_fields: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.fields + tuple(self.child_prefix + name for name in self.child_fields)

    def header_problems(self, header: Sequence[str]) -> list[str]:
        """What is wrong with a header line (unknown, repeated or missing columns)."""
        known = set(self.columns)
        problems = [f"unknown column {name!r}" for name in header if name not in known]
        repeated = sorted({name for name in header if header.count(name) > 1})
        problems += [f"column {name!r} appears twice" for name in repeated]
        problems += [f"missing column {name!r}" for name in sorted(self.required - set(header))]
        return problems

    def column_of(self, field: str | None) -> str | None:
        """The column a service error's field names (``items.2.product`` → ``item_product``)."""
        if field is None:
            return None
        parts = field.split(".")
        if self.child and parts[0] == self.child and len(parts) >= 3:
            return self.child_prefix + parts[2]
        if parts[0] == "specs" and len(parts) >= 2 and parts[1] in ("zh", "en"):
            return f"specs_{parts[1]}"
        return field

    def child_index(self, field: str | None) -> int | None:
        """Which child a field belongs to (``items.2.product`` → 2), to name its line."""
        parts = (field or "").split(".")
        if self.child and len(parts) >= 2 and parts[0] == self.child and parts[1].isdigit():
            return int(parts[1])
        return None


def _required(model: type[BaseModel], skip: set[str]) -> set[str]:
    return {name for name, info in model.model_fields.items()
            if info.is_required() and name not in skip}


def _layout(kind: str, child: str | None = None, prefix: str = "") -> Layout:
    model = ENTITIES[kind].model
    fields = [name for name in model.model_fields if name not in (child, "updated_at")]
    fields.append("updated_at")  # last, as exports tend to put it
    required = _required(model, {child} if child else set())
    child_fields: tuple[str, ...] = ()
    if kind == "products":  # specs: one column per language
        at = fields.index("specs")
        fields[at:at + 1] = ["specs_zh", "specs_en"]
    if child is not None:
        child_model = model.model_fields[child].annotation.__args__[0]  # list[ChildRow]
        child_fields = tuple(child_model.model_fields)
        if model.model_fields[child].is_required():  # orders need their item columns
            required |= {prefix + name for name in _required(child_model, set())}
    return Layout(kind, ENTITIES[kind].key_field, tuple(fields), frozenset(required), child,
                  prefix, child_fields)


LAYOUTS: dict[str, Layout] = {
    "products": _layout("products"),
    "customers": _layout("customers"),
    "orders": _layout("orders", "items", "item_"),
    "shipments": _layout("shipments", "events", "event_"),
    "refunds": _layout("refunds"),
}


def _local(value: str, zone: ZoneInfo | None) -> str:
    """A time without an offset read in ``zone`` (when given); anything else as it is."""
    if zone is None:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the row model says what is wrong with it
    return moment.replace(tzinfo=zone).isoformat() if moment.tzinfo is None else value


def _list(column: str, value: str) -> list[Any]:
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise CellError(column, f"{column} is not a JSON array") from None
        if not isinstance(parsed, list):
            raise CellError(column, f"{column} is not a JSON array")
        return parsed
    return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]


def _pairs(column: str, value: str) -> dict[str, Any]:
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise CellError(column, f"{column} is not a JSON object") from None
        if not isinstance(parsed, dict):
            raise CellError(column, f"{column} is not a JSON object")
        return parsed
    pairs: dict[str, Any] = {}
    for part in value.split(LIST_SEPARATOR):
        if not part.strip():
            continue
        name, equals, text = part.partition(PAIR_SEPARATOR)
        if not equals:
            raise CellError(column, f"{column} needs name=value pairs separated by |")
        pairs[name.strip()] = text.strip()
    return pairs


def record_fields(layout: Layout, cells: Mapping[str, str], zone: ZoneInfo | None = None
                  ) -> dict[str, Any]:
    """The record's own fields of one line (empty cells left out)."""
    fields: dict[str, Any] = {}
    for column in layout.fields:
        value = (cells.get(column) or "").strip()
        if not value:
            continue
        if column == "aliases":
            fields[column] = _list(column, value)
        elif column in ("specs_zh", "specs_en"):
            fields.setdefault("specs", {})[column[-2:]] = _pairs(column, value)
        elif column in TIME_FIELDS:
            fields[column] = _local(value, zone)
        else:
            fields[column] = value
    return fields


def child_fields(layout: Layout, cells: Mapping[str, str], zone: ZoneInfo | None = None
                 ) -> dict[str, Any] | None:
    """The child (order item, tracking scan) a line carries; None when its cells are empty."""
    child: dict[str, Any] = {}
    for name in layout.child_fields:
        value = (cells.get(layout.child_prefix + name) or "").strip()
        if value:
            child[name] = _local(value, zone) if name in TIME_FIELDS else value
    return child or None
