"""What a shop sends, one typed row per record, and the check that turns a raw row into one.

The models say the shape (types, lengths, ranges, the allowed states); :func:`parse` turns a
raw mapping (a JSON object, a CSV line read as a dict) into a row or raises the one typed error
(``ticketing.core.errors``) that says what is wrong. Messages name the field, never the value:
a malformed phone or address must not be echoed back or logged. Rules that need the database
or several fields at once (amounts that add up, states that may not go back, known products)
belong to the entity modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ticketing.core.errors import (
    FieldTooLong,
    InvalidAmount,
    KefuError,
    UnknownState,
    ValidationError,
)

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                Field(description="The shop's own id of the record (unique per kind).")]
# The amount columns are 32-bit integers: 2,000,000,000 fen (20 million yuan) is the most one
# amount may be; a larger one is a row error, not a failed batch.
MAX_CENTS = 2_000_000_000
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS, description="Whole cents (fen).")]



def _limited(limit: int, minimum: int = 1) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=minimum, max_length=limit)


# text fields by their limit; ``Blank…`` may be empty (an optional wording)
Str32 = Annotated[str, _limited(32)]
Str40 = Annotated[str, _limited(40)]
Str120 = Annotated[str, _limited(120)]
Str200 = Annotated[str, _limited(200)]
Str300 = Annotated[str, _limited(300)]
Blank80 = Annotated[str, _limited(80, 0)]
Blank200 = Annotated[str, _limited(200, 0)]
Blank1000 = Annotated[str, _limited(1000, 0)]


class Row(BaseModel):
    """Every row: unknown fields are refused (a typo must not pass silently), and
    ``updated_at`` is the time of the shop's version: an older one never overwrites a newer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    updated_at: AwareDatetime = Field(
        description="When the shop last changed this record (with a time zone).")


class ProductRow(Row):
    external_id: Key
    sku: Str32 | None = Field(default=None, description="Defaults to the external id.")
    name_zh: Str200
    name_en: Str200
    aliases: list[Str40] = Field(default_factory=list, max_length=30,
                                     description="Nicknames customers use.")
    category: Str40
    specs: dict[Literal["zh", "en"], dict[Str40, Str200]] = Field(
        default_factory=dict, description='{"zh": {"颜色": "白色"}, "en": {"colour": "white"}}')
    price_cents: Cents
    stock: Annotated[int, Field(ge=0, le=100_000_000)]
    low_stock_threshold: Annotated[int, Field(ge=0, le=100_000)] | None = None
    no_reason_return_7d: bool = True
    delivery_zh: Blank200 | None = None
    delivery_en: Blank200 | None = None


class CustomerRow(Row):
    external_id: Key
    name: Str120
    phone: Str32 | None = Field(default=None, description="Stored encrypted, shown masked.")
    address: Str300 | None = Field(default=None, description="Stored encrypted.")
    segment: Literal["vip", "regular", "potential"] | None = None
    language: Literal["zh", "en", "zh-CN", "zh-TW", "en-US", "en-GB"] | None = None
    shipping_notices_opt_out: bool | None = Field(
        default=None, description="True: no shipped/delivered/parcel-problem notices.")


class OrderItemRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product: Key = Field(description="The product's external id or SKU.")
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    unit_price_cents: Cents


OrderStateName = Literal["pending_payment", "paid", "shipped", "delivered", "completed",
                         "cancelled"]


class OrderRow(Row):
    number: Str40 = Field(description="The shop's order number: 16-19 digits.")
    customer: Key = Field(description="The customer's external id.")
    state: OrderStateName
    items: list[OrderItemRow] = Field(min_length=1, max_length=200)
    total_cents: Cents | None = Field(default=None, description="Defaults to the items' sum.")
    paid_cents: Cents = 0
    refunded_cents: Cents = 0
    payment_method: Literal["alipay", "wechat", "card"] | None = None
    address: Str300 | None = Field(default=None, description="Delivery address, encrypted.")
    created_at: AwareDatetime | None = None
    paid_at: AwareDatetime | None = None
    shipped_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None


TrackingStatus = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]


class TrackingEventRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Key | None = None
    at: AwareDatetime
    status: TrackingStatus
    location_zh: Blank80 | None = None
    location_en: Blank80 | None = None
    description_zh: Blank200 | None = None
    description_en: Blank200 | None = None


class ShipmentRow(Row):
    external_id: Key
    order: Str40 = Field(description="The order's number.")
    carrier: Str40 = Field(description="Carrier code: SF, ZTO, YTO, JD, EMS, STO, YD, …")
    tracking_number: Str40
    shipped_at: AwareDatetime
    promised_by: AwareDatetime | None = Field(
        default=None, description="Promised delivery; defaults to 3 days after shipping.")
    delivered_at: AwareDatetime | None = None
    events: list[TrackingEventRow] = Field(default_factory=list, max_length=200)


class RefundRow(Row):
    external_id: Key
    order: Str40 = Field(description="The order's number.")
    state: Literal["applied", "under_review", "processing", "done", "rejected"]
    amount_cents: Annotated[int, Field(ge=1, le=MAX_CENTS)]
    reason: Literal["changed_mind", "wrong_size", "quality", "damaged", "not_as_described",
                    "wrong_item", "late_delivery", "other"]
    reason_text: Blank1000 = ""
    method: Literal["original", "balance"] = "original"
    kind: Literal["cancel_and_refund", "return_and_refund"] | None = Field(
        default=None, description="Defaults from the order: unshipped → cancel_and_refund.")
    rejection_reason: Blank1000 | None = Field(
        default=None, description="Required when rejected: the customer reads it.")
    created_at: AwareDatetime | None = None
    done_at: AwareDatetime | None = None


R = TypeVar("R", bound=BaseModel)

_STATE_FIELDS = {"state", "status"}
_SHORT = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "timezone_aware": "needs a time zone",
    "too_short": "has too few entries",
    "too_long": "has too many entries",
    "string_too_short": "is empty",
}


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "row"


def typed_error(error: pydantic.ValidationError) -> KefuError:
    """The first problem of a row as Kefu's typed error (field named, value never shown)."""
    first = error.errors(include_input=False, include_url=False)[0]
    kind, loc = first["type"], tuple(first.get("loc", ()))
    field = _field(loc)
    leaf = str(loc[-1]) if loc else ""
    if kind == "string_too_long":
        return FieldTooLong(f"{field} is longer than {first['ctx']['max_length']} characters",
                            field=field)
    if leaf in _STATE_FIELDS and kind in ("literal_error", "enum"):
        return UnknownState(f"{field} must be one of {first['ctx']['expected']}", field=field)
    if leaf.endswith("_cents") and kind in ("greater_than_equal", "greater_than", "less_than_equal",
                                            "int_parsing", "int_from_float", "int_type"):
        return InvalidAmount(f"{field} must be whole cents within range", field=field)
    reason = _SHORT.get(kind) or first["msg"].split(",")[0].lower()
    return ValidationError(f"{field} {reason}", field=field)


def parse(model: type[R], raw: Mapping[str, Any] | Any) -> R:
    """``raw`` as a ``model`` row, or the typed error saying what is wrong with it."""
    if not isinstance(raw, Mapping):
        raise ValidationError("a row must be an object", field="row")
    try:
        return model.model_validate(dict(raw))
    except pydantic.ValidationError as error:
        raise typed_error(error) from None
