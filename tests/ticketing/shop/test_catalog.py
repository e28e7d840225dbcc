"""Product matching is fuzzy but honest; stock is live and never over-promised."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from ticketing.shop import catalog
from ticketing.core.models import Product


@pytest.fixture
def shop(make):
    return {
        "earbuds": make.product(name_zh="无线蓝牙耳机", name_en="Wireless Bluetooth Earbuds",
                                aliases=["豆子耳机", "airpods"]),
        "headphones": make.product(name_zh="头戴式降噪耳机", name_en="Noise Cancelling Headphones",
                                   aliases=["头戴耳机"]),
        "powerbank": make.product(name_zh="充电宝", name_en="Power Bank", aliases=["移动电源"],
                                  stock=0),
        "lipstick": make.product(name_zh="哑光口红", name_en="Matte Lipstick", category="beauty",
                                 stock=3),
        "thermos": make.product(name_zh="不锈钢保温杯", name_en="Stainless Steel Thermos",
                                category="home", aliases=["水杯"]),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("earbud", "earbuds"),  # partial English
        ("erabuds", "earbuds"),  # typo
        ("蓝呀耳机", "earbuds"),  # Chinese typo
        ("蓝牙earbuds", "earbuds"),  # mixed language
        ("豆子耳机", "earbuds"),  # nickname
        ("AirPods", "earbuds"),  # alias, case
        ("头戴耳机", "headphones"),
        ("power bank", "powerbank"),
        ("移动电源", "powerbank"),
        ("lipstik", "lipstick"),
        ("保温杯", "thermos"),
        ("ｔｈｅｒｍｏｓ", "thermos"),  # full-width
    ],
)
def test_search_finds_the_meant_product(shop, session, query, expected) -> None:
    matches = catalog.search(session, query=query)
    assert matches, query
    assert matches[0].product is shop[expected]
    assert matches[0].score >= catalog.MATCH_SCORE
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_search_returns_nothing_for_unrelated_words(shop, session) -> None:
    assert catalog.search(session, query="xyzzy") == []
    assert catalog.search(session, query="火箭发射") == []
    assert catalog.search(session, query="  ") == []


def test_resolve_one_clear_product(shop, session) -> None:
    result = catalog.resolve(session, query="蓝牙耳机")
    assert result.product is shop["earbuds"] and not result.ambiguous


def test_resolve_ambiguous_offers_at_most_three_buttons(shop, session, make) -> None:
    make.product(name_zh="骨传导耳机", name_en="Bone Conduction Headset")
    make.product(name_zh="儿童耳机", name_en="Kids Headset")
    result = catalog.resolve(session, query="耳机")
    assert result.product is None and result.ambiguous
    assert 2 <= len(result.candidates) <= catalog.MAX_BUTTONS
    assert {m.product.id for m in result.candidates} <= {
        p.id for p in session.query(Product) if "耳机" in p.name_zh}


def test_resolve_suggests_when_nothing_matches(shop, session, make) -> None:
    customer = make.customer()
    make.order(customer=customer, product=shop["thermos"], quantity=5)
    make.order(customer=customer, product=shop["powerbank"], quantity=9)  # out of stock
    result = catalog.resolve(session, query="xyzzy")
    assert result.product is None and not result.ambiguous
    assert result.suggestions[0] is shop["thermos"]
    assert shop["powerbank"] not in result.suggestions  # never suggest what we cannot sell


def test_search_is_fast_for_hundreds_of_products(make, session) -> None:
    for i in range(300):
        make.product(name_zh=f"商品{i}号", name_en=f"Product number {i}", aliases=[f"p{i}"])
    started = time.perf_counter()
    catalog.search(session, query="蓝牙earbuds")
    assert time.perf_counter() - started < 1.0


def test_describe_has_price_specs_delivery_and_return_terms(shop) -> None:
    zh = catalog.describe(shop["earbuds"], language="zh")
    en = catalog.describe(shop["earbuds"], language="en")
    assert "无线蓝牙耳机" in zh and "¥199.00" in zh and "颜色：白色" in zh
    assert "顺丰包邮" in zh and "支持7天无理由退货" in zh and "有现货" in zh
    assert "Wireless Bluetooth Earbuds" in en and "colour: white" in en
    assert "7-day no-reason returns accepted" in en


def test_describe_without_7_day_return(make) -> None:
    food = make.product(name_zh="牛肉干", name_en="Beef Jerky", no_reason_return_7d=False)
    assert "不支持7天无理由退货" in catalog.describe(food, language="zh")
    assert "no 7-day no-reason return" in catalog.describe(food, language="en")


def test_out_of_stock_is_never_promised(shop) -> None:
    for language in ("zh", "en"):
        text = catalog.describe(shop["powerbank"], language=language)
        assert "48" not in text  # no dispatch promise
    assert "缺货" in catalog.stock_status(shop["powerbank"], language="zh")
    assert "out of stock" in catalog.stock_status(shop["powerbank"], language="en")
    assert catalog.stock_level(shop["powerbank"]) is catalog.StockLevel.OUT


def test_low_stock_warning(shop) -> None:
    assert catalog.stock_level(shop["lipstick"]) is catalog.StockLevel.LOW
    assert "仅剩 3 件" in catalog.stock_status(shop["lipstick"], language="zh")
    assert "only 3 left" in catalog.stock_status(shop["lipstick"], language="en")


def test_stock_is_read_live_from_the_database(shop, session) -> None:
    earbuds = shop["earbuds"]
    assert catalog.stock_level(earbuds) is catalog.StockLevel.IN_STOCK
    # the last units sell elsewhere: a Core UPDATE leaves this session's loaded object stale
    table = Product.__table__
    session.execute(update(table).where(table.c.id == earbuds.id).values(stock=0))
    assert earbuds.stock > 0
    assert catalog.stock_level(earbuds) is catalog.StockLevel.OUT
    assert "缺货" in catalog.describe(earbuds, language="zh")
