"""Products from the shop: create, update, replay, out-of-order, validation, restock notices."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.ticketing.shop.ingest.shop_rows import NOW, at, one, outbox, product, run, statuses
from ticketing.core.models import Product, RestockSubscription
from ticketing.shop import catalog
from ticketing.shop.ingest import restock


def _product(session) -> Product:
    return session.scalars(select(Product).where(Product.external_id == "P-1")).one()


def test_create_then_update_then_replay_is_unchanged(session, cipher) -> None:
    assert one(session, cipher, "products", product()).status.value == "created"
    stored = _product(session)
    assert (stored.sku, stored.name_zh, stored.aliases, stored.stock) == \
        ("P-1", "无线蓝牙耳机", ["豆子耳机"], 10)
    assert stored.specs["en"] == {"colour": "white"} and stored.low_stock_threshold == 5
    # the bot finds it by its nickname (rules §PROD-1)
    assert catalog.resolve(session, query="豆子耳机").product.id == stored.id

    newer = product(price_cents=17900, updated_at=at(1))
    assert one(session, cipher, "products", newer).status.value == "updated"
    assert _product(session).price_cents == 17900
    assert one(session, cipher, "products", newer).status.value == "unchanged"


def test_an_older_version_is_stale_and_writes_nothing(session, cipher) -> None:
    one(session, cipher, "products", product(price_cents=100, updated_at=at(1)))
    result = one(session, cipher, "products", product(price_cents=999, updated_at=at(2)))
    assert result.status.value == "stale" and result.key == "P-1"
    assert _product(session).price_cents == 100


def test_validation_errors_name_the_field(session, cipher) -> None:
    report = run(session, cipher, "products",
                 product(external_id="P-2", name_en="x" * 201),
                 product(external_id="P-3", price_cents=-1),
                 product(external_id="P-4", stock="many"),
                 product(external_id="P-5", updated_at="2026-11-30T04:00:00"),
                 product(external_id="P-6", colour="red"),
                 product(external_id="P-7" * 12),  # too long to be used as the sku too
                 )
    assert statuses(report) == ["field_too_long", "invalid_amount", "invalid_input",
                                "invalid_input", "invalid_input", "field_too_long"]
    assert [r.error.field for r in report.results] == [
        "name_en", "price_cents", "stock", "updated_at", "colour", "sku"]
    assert session.scalar(select(Product.id)) is None


def test_a_sku_of_another_product_is_refused(session, cipher) -> None:
    one(session, cipher, "products", product(sku="SKU-A"))
    result = one(session, cipher, "products", product(external_id="P-2", sku="SKU-A"))
    assert result.error.code == "key_taken" and result.error.field == "sku"


def test_back_in_stock_tells_each_waiting_customer_once(session, cipher, make) -> None:
    one(session, cipher, "products", product(stock=0, updated_at=at(5)))
    stored = _product(session)
    zh, en = make.customer(language="zh"), make.customer(language="en")
    first = restock.subscribe(session, customer_id=zh.id, product_id=stored.id, now=NOW)
    assert restock.subscribe(session, customer_id=zh.id, product_id=stored.id, now=NOW) == first
    restock.subscribe(session, customer_id=en.id, product_id=stored.id, now=NOW)

    assert one(session, cipher, "products", product(stock=0, price_cents=1, updated_at=at(4))
               ).status.value == "updated"
    assert outbox(session) == []  # still sold out: nobody is told
    assert one(session, cipher, "products", product(stock=3, updated_at=at(3))
               ).status.value == "updated"
    messages = outbox(session, "restock")
    assert [(m.customer_id, m.language) for m in messages] == [(zh.id, "zh"), (en.id, "en")]
    assert "无线蓝牙耳机" in messages[0].text and "Wireless Earbuds" in messages[1].text
    assert all(s.notified_at == NOW for s in session.scalars(select(RestockSubscription)))

    # sold out and back again: the used subscriptions fire no more
    run(session, cipher, "products", product(stock=0, updated_at=at(2)),
        product(stock=5, updated_at=at(1)))
    assert len(outbox(session, "restock")) == 2
    # a new wish after the notice is a new subscription
    again = restock.subscribe(session, customer_id=zh.id, product_id=stored.id,
                              now=NOW + timedelta(minutes=1))
    assert again.id != first.id and again.notified_at is None
