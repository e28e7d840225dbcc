"""The shop's own API (``/api/v1/shop/``): how a shop puts its products, customers, orders,
shipments and refunds into Kefu and reads them back.

- Only API tokens, never a desk cookie: ``shop:write`` to send batches, ``shop:read`` to read.
  No or a dead token is 401; a live token without the scope is 403.
- ``POST`` or ``PUT /api/v1/shop/{kind}`` with ``{"rows": [...]}`` (at most 1,000) upserts the
  rows through ``ticketing.shop.ingest`` in one transaction and answers one result per row
  (``created``, ``updated``, ``unchanged``, ``stale`` or ``error`` with its code); a bad row
  changes nothing and the others go on, so the answer is 200 whatever the rows' fate.
- ``GET /api/v1/shop/orders/{number}``, ``…/customers/{external_id}``,
  ``…/products/{external_id}`` read a record back, phone and address masked.
- Every use is one audit row (``shop.batch`` with the counts, ``shop.read``), never PII.
- Each token has a quota (``ticketing.shop.ingest.quota``, shared through Redis when the desk
  has it): over it the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SkipValidation, create_model
from starlette.concurrency import run_in_threadpool

from ticketing.core import audit
from ticketing.core.errors import AuthenticationFailed, PermissionDenied, RateLimited
from ticketing.desk import accounts
from ticketing.shop import ingest
from ticketing.shop.ingest import views
from ticketing.shop.ingest.quota import TokenBucket, retry_after
from ticketing.web.api import DESCRIPTIONS, ErrorOut, InvalidInput
from ticketing.web.deps import Desk, client_ip, desk_of
from ticketing.web.language import language_for

PREFIX = "/api/v1/shop"
QUOTA_KEY = "shop_quota"  # desk.extras: the process's TokenBucket (a test may put its own)
router = APIRouter(prefix=PREFIX, tags=["shop"])

_ERRORS = {
    401: "No API token, or an unknown, revoked or expired one",
    403: "The token lacks the scope (shop:write to send, shop:read to read)",
    404: "No such record",
    422: DESCRIPTIONS[422] + ", or more than 1,000 rows",
    429: "Too many requests with this token: retry after Retry-After seconds",
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorOut, "description": _ERRORS[status]}
        for status in sorted({401, 403, 422, 429, *statuses})}
    answers[429]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "Seconds to wait"}}
    return answers


# --- who is calling ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ShopCaller:
    """The token a request came with: its id (quota, audit) and the agent it acts as."""

    token_id: int
    agent_id: int
    ip: str | None


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _authenticate(desk: Desk, secret: str | None, scope: str, ip: str | None) -> ShopCaller:
    with desk.unit_of_work() as session:
        try:
            token = accounts.token_for(session, secret=secret, scope=scope, now=desk.clock())
        except AuthenticationFailed as refused:
            if refused.context.get("scope"):  # a live token, just not for this
                raise PermissionDenied(f"the token lacks the {scope} scope") from None
            raise
        return ShopCaller(token.id, token.agent_id, ip)


def quota_of(desk: Desk) -> TokenBucket:
    bucket = desk.extras.get(QUOTA_KEY)
    if bucket is None:
        bucket = desk.extras[QUOTA_KEY] = TokenBucket(redis=desk.redis)
    return bucket


def _admit(scope: str) -> Any:
    async def admitted(request: Request) -> ShopCaller:
        desk = desk_of(request)
        caller = await run_in_threadpool(_authenticate, desk, _bearer(request), scope,
                                         client_ip(request))
        wait = await run_in_threadpool(quota_of(desk).take, f"token:{caller.token_id}",
                                       now=desk.clock().timestamp())
        if wait > 0:
            raise RateLimited(retry_after=retry_after(wait))
        return caller

    return Depends(admitted)


Writer = Annotated[ShopCaller, _admit("shop:write")]
Reader = Annotated[ShopCaller, _admit("shop:read")]


# --- batches ---------------------------------------------------------------------------------
class RowErrorOut(BaseModel):
    code: str = Field(description="Stable error code, e.g. unknown_state, refunded_exceeds_paid")
    message: str = Field(description="What is wrong, naming the field (never its value)")
    field: str | None = None


class RowResultOut(BaseModel):
    index: int = Field(description="Position of the row in the request, from 0")
    key: str | None = Field(description="The row's external id (orders: number), if readable")
    status: Literal["created", "updated", "unchanged", "stale", "error"]
    error: RowErrorOut | None = None


class BatchOut(BaseModel):
    kind: str
    counts: dict[str, int] = Field(description="Rows per status")
    results: list[RowResultOut]


def _batch_model(kind: str, model: type[BaseModel]) -> type[BaseModel]:
    name = "".join(part.title() for part in kind.split("_")) + "BatchIn"
    rows: Any = list[model]  # type: ignore[valid-type]  # a model chosen at run time
    return create_model(name, rows=(rows, Field(max_length=ingest.MAX_ROWS)))


def _rows(request: Request, body: Any) -> list[Any]:
    """``rows`` of the JSON body, unvalidated (each row is validated on its own)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise InvalidInput(["content-type"])
    if body is None:
        raise InvalidInput(["body"])
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise InvalidInput(["rows"])
    return rows


def _ingest(request: Request, caller: ShopCaller, kind: str, rows: list[Any]) -> BatchOut:
    desk = desk_of(request)
    now = desk.clock()
    with desk.unit_of_work() as session:
        report = ingest.run_batch(session, entity_name=kind, rows=rows,
                                  ctx=ingest.Context(cipher=desk.cipher, now=now))
        errors = Counter(r.error.code for r in report.results if r.error is not None)
        audit.record(session, action="shop.batch", actor_type="agent", actor_id=caller.agent_id,
                     target_type="shop_batch", target_id=kind, ip=caller.ip, now=now,
                     details={"token_id": caller.token_id, "method": request.method,
                              "rows": len(rows), **report.counts, "errors": dict(errors)})
    return BatchOut(kind=kind, counts=report.counts, results=[
        RowResultOut(index=r.index, key=r.key, status=r.status.value,
                     error=None if r.error is None else RowErrorOut(
                         code=r.error.code, message=r.error.message, field=r.error.field))
        for r in report.results])


def _add_batch_routes(kind: str) -> None:
    batch = _batch_model(kind, ingest.entity(kind).model)

    def upsert(request: Request, caller: Writer, body: Any = None) -> BatchOut:
        return _ingest(request, caller, kind, _rows(request, body))

    # the body as parsed JSON, never validated here (a bad row must not refuse the batch: it
    # gets its own result), but typed as the batch: OpenAPI shows it, and FastAPI puts the row
    # model in components/schemas (pydantic's own schema of it would refer to "#/$defs/…",
    # which resolves in no OpenAPI document)
    upsert.__annotations__["body"] = Annotated[
        SkipValidation[batch], Body(title=batch.__name__)]  # type: ignore[valid-type]
    upsert.__doc__ = (f"Create or update {kind} by the shop's key: one result per row; a bad "
                      "row changes nothing and the rest go on.")
    for method in ("POST", "PUT"):
        router.add_api_route(f"/{kind}", upsert, methods=[method], response_model=BatchOut,
                             responses=_responses(),
                             openapi_extra={"requestBody": {"required": True}},
                             operation_id=f"shop_{method.lower()}_{kind}",
                             summary=f"Upsert {kind} ({method})")


for _kind in ingest.ENTITIES:
    _add_batch_routes(_kind)


# --- reads -------------------------------------------------------------------------------------
ExternalId = Annotated[str, Path(min_length=1, max_length=64)]
OrderNumber = Annotated[str, Path(min_length=1, max_length=40)]


class ProductOut(BaseModel):
    external_id: str | None
    sku: str
    name_zh: str
    name_en: str
    aliases: list[str]
    category: str
    specs: dict[str, dict[str, str]]
    price_cents: int
    stock: int
    low_stock_threshold: int
    no_reason_return_7d: bool
    delivery_zh: str
    delivery_en: str
    updated_at: datetime | None


class CustomerOut(BaseModel):
    external_id: str | None
    name: str
    segment: str
    language: str
    phone: str | None = Field(description="Masked: 138****5678")
    address: str | None = Field(description="Masked: the region only")
    shipping_notices_opt_out: bool
    updated_at: datetime | None


class TrackingEventOut(BaseModel):
    external_id: str | None
    at: datetime
    status: str
    location_zh: str
    location_en: str
    description_zh: str
    description_en: str


class ShipmentOut(BaseModel):
    external_id: str | None
    carrier: str
    tracking_number: str
    shipped_at: datetime
    promised_by: datetime
    delivered_at: datetime | None
    updated_at: datetime | None
    events: list[TrackingEventOut]


class OrderItemOut(BaseModel):
    product: str | None = Field(description="The product's external id, else its SKU")
    quantity: int
    unit_price_cents: int


class RefundBriefOut(BaseModel):
    external_id: str | None
    state: str
    amount_cents: int
    reason: str
    method: str
    created_at: datetime
    done_at: datetime | None


class OrderOut(BaseModel):
    number: str
    customer: str | None = Field(description="The customer's external id")
    state: str
    total_cents: int
    paid_cents: int
    refunded_cents: int
    payment_method: str | None
    address: str | None = Field(description="Masked: the region only")
    created_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime | None
    items: list[OrderItemOut]
    shipments: list[ShipmentOut]
    refunds: list[RefundBriefOut]


def _read(request: Request, caller: ShopCaller, kind: str, key: str, view: Any) -> Any:
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        found = view(session)
        audit.record(session, action="shop.read", actor_type="agent", actor_id=caller.agent_id,
                     target_type=kind, target_id=key, ip=caller.ip, now=desk.clock(),
                     details={"token_id": caller.token_id})
    return found


@router.get("/orders/{number}", response_model=OrderOut, responses=_responses(404))
def read_order(request: Request, number: OrderNumber, caller: Reader) -> Any:
    """One order with its items, shipments (with scans) and refunds; the address masked."""
    return _read(request, caller, "order", number, lambda s: views.order_view(
        s, number=number, cipher=desk_of(request).cipher))


@router.get("/customers/{external_id}", response_model=CustomerOut, responses=_responses(404))
def read_customer(request: Request, external_id: ExternalId, caller: Reader) -> Any:
    """One customer; phone and address masked."""
    return _read(request, caller, "customer", external_id, lambda s: views.customer_view(
        s, external_id=external_id, cipher=desk_of(request).cipher))


@router.get("/products/{external_id}", response_model=ProductOut, responses=_responses(404))
def read_product(request: Request, external_id: ExternalId, caller: Reader) -> Any:
    """One product as Kefu holds it (stock included)."""
    return _read(request, caller, "product", external_id,
                 lambda s: views.product_view(s, external_id=external_id))


def install(app: FastAPI) -> None:
    """Mount the shop API, and answer its quota refusals with 429 and ``Retry-After``."""
    app.include_router(router)

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, error: RateLimited) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": error.code, "message": error.text(language_for(request))}},
            status_code=429, headers={"Retry-After": str(error.context.get("retry_after", 1))})
