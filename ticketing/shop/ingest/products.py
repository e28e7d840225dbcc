"""Products from the shop (rules §PROD-1, §PROD-2): names, nicknames, specs, price, stock.

Keyed by the shop's external id; the SKU defaults to it and must stay unique. A row that takes
the stock from 0 to more tells the customers waiting for the product (``restock.fire``). The
catalog keeps no copy of products between questions (it reads them, and the stock, live), so
there is no search cache to invalidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ticketing.core.errors import FieldTooLong, KeyTaken
from ticketing.core.models import Product
import ticketing.shop.ingest.restock as restock
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.lookups import PRODUCT, SKU, Lookups
from ticketing.shop.ingest.rows import ProductRow

SKU_MAX = 32  # Product.sku
DEFAULT_LOW_STOCK = 5  # Product.low_stock_threshold's default (rules §PROD-2)


def _values(row: ProductRow, current: Product | None) -> dict[str, Any]:
    sku = row.sku or row.external_id
    if len(sku) > SKU_MAX:
        raise FieldTooLong(f"sku (or an external_id used as sku) is longer than {SKU_MAX}",
                           field="sku")
    threshold = row.low_stock_threshold
    if threshold is None:
        threshold = current.low_stock_threshold if current is not None else DEFAULT_LOW_STOCK
    return {
        "sku": sku, "name_zh": row.name_zh, "name_en": row.name_en,
        "aliases": list(row.aliases), "category": row.category,
        "specs": {lang: dict(specs) for lang, specs in row.specs.items()},
        "price_cents": row.price_cents, "stock": row.stock, "low_stock_threshold": threshold,
        "no_reason_return_7d": row.no_reason_return_7d,
        "delivery_zh": row.delivery_zh or "", "delivery_en": row.delivery_en or "",
    }


def preload(known: Lookups, rows: Sequence[ProductRow], ctx: Context) -> None:
    """The batch's products (locked) and the holders of the SKUs it sends."""
    known.preload(PRODUCT, (row.external_id for row in rows))
    known.preload(SKU, (row.sku or row.external_id for row in rows))


def upsert_product(session: Session, row: ProductRow, *, ctx: Context, known: Lookups
                   ) -> Status:
    """Create or update one product; restock notices when it comes back into stock.
    Everything that can refuse the row is checked before the first change."""
    product = known.one(PRODUCT, row.external_id)
    if product is not None and is_stale(product.source_updated_at, row.updated_at):
        return Status.STALE
    values = _values(row, product)
    owner = known.one(SKU, values["sku"])
    if owner is not None and owner is not product:
        raise KeyTaken("the sku belongs to another product", field="sku")
    if product is None:
        product = Product(external_id=row.external_id, source_updated_at=utc(row.updated_at),
                          **values)
        session.add(product)
        known.remember(PRODUCT, product)
        known.remember(SKU, product)
        return Status.CREATED
    was_out = product.stock <= 0
    changed = assign(product, values)
    known.remember(SKU, product)
    product.source_updated_at = newest(product.source_updated_at, row.updated_at)
    if not changed:
        return Status.UNCHANGED
    if was_out and product.stock > 0 and ctx.notify:
        session.flush()  # a product made earlier in this batch gets its id
        restock.fire(session, product=product, now=ctx.now)
    return Status.UPDATED
