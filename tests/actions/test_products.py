"""product_info and product_stock: fuzzy names, ambiguity buttons, suggestions, honest stock."""

from __future__ import annotations

import json

import pytest

from actions.products import ActionProductInfo, ActionProductStock
from tests.actions.harness import run, tracker
from ticketing.demo import data as demo_data
from ticketing.shop import catalog

VISITOR = "widget:shopper-1"  # product questions need no verification


def ask(action_intent: str, *, product: str | None, language: str = "zh", text: str = "",
        slots: dict | None = None):
    entities = [{"entity": "product", "value": product}] if product else []
    return tracker(sender_id=VISITOR, slots={"language": language, **(slots or {})},
                   text=text or (product or "?"), intent=action_intent, entities=entities)


def earbuds(make, *, colours=("白色", "黑色", "粉色", "蓝色"),
            english=("White", "Black", "Pink", "Blue"), stock: int = 50) -> list:
    return [make.product(name_zh=f"无线蓝牙耳机 {zh}", name_en=f"Wireless Earbuds {en}",
                         price_cents=19900 + i * 1000, stock=stock)
            for i, (zh, en) in enumerate(zip(colours, english))]


@pytest.mark.parametrize("language, query, words", [
    ("zh", "智能手表", ["智能手表 S3", "价格：¥1299.00", "规格：", "7天无理由", "有现货"]),
    ("en", "smart watch", ["Smart Watch S3", "Price: ¥1299.00", "Specs:", "7-day", "In stock"]),
])
def test_product_info_describes_the_one_match(make, session, action_backend, language, query,
                                              words) -> None:
    watch = make.product(name_zh="智能手表 S3", name_en="Smart Watch S3", price_cents=129900,
                         aliases=["手表", "watch"])
    make.product(name_zh="机械键盘 K8", name_en="Mechanical Keyboard K8", aliases=["键盘"])
    session.commit()
    result = run(ActionProductInfo(), ask("product_info", product=query, language=language))
    for word in words:
        assert word in result.text
    assert result.buttons == []
    assert result.slots() == {"product": watch.name_zh if language == "zh" else watch.name_en}


@pytest.mark.parametrize("language, query, intent", [
    ("zh", "蓝牙耳机", "product_info"), ("en", "earbuds", "product_info"),
    ("zh", "蓝牙耳机", "product_stock"), ("en", "earbuds", "product_stock"),
])
def test_ambiguous_name_offers_three_buttons_in_the_customers_language(
        make, session, action_backend, language, query, intent) -> None:
    made = earbuds(make)
    session.commit()
    action = ActionProductInfo() if intent == "product_info" else ActionProductStock()
    result = run(action, ask(intent, product=query, language=language))
    assert result.text == ("您说的是哪一款呢？" if language == "zh" else "Which one do you mean?")
    assert len(result.buttons) == 3
    names = [(p.name_zh if language == "zh" else p.name_en) for p in made[:3]]
    assert [b["payload"] for b in result.buttons] == [
        f"/{intent}" + json.dumps({"product": n}, ensure_ascii=False) for n in names]
    assert all(b["title"].startswith(n) and "¥" in b["title"]
               for b, n in zip(result.buttons, names))
    assert result.slots() == {}


def test_a_button_click_resolves_to_exactly_that_product(make, session, action_backend) -> None:
    made = earbuds(make)
    session.commit()
    first = run(ActionProductInfo(), ask("product_info", product="earbuds", language="en"))
    payload = first.buttons[1]["payload"]
    chosen = json.loads(payload[len("/product_info"):])["product"]
    second = run(ActionProductInfo(), ask("product_info", product=chosen, language="en"))
    assert second.buttons == [] and made[1].name_en in second.text
    assert second.slots() == {"product": made[1].name_en}


@pytest.mark.parametrize("language, expected", [
    ("zh", "没有找到“量子冰箱”这款商品"), ("en", "I couldn't find a product called \"quantum fridge\""),
])
def test_no_match_gets_suggestions(make, session, action_backend, language, expected) -> None:
    make.product(name_zh="便携蓝牙音箱", name_en="Portable Bluetooth Speaker", aliases=["音箱"])
    make.product(name_zh="不锈钢保温杯", name_en="Stainless Steel Thermos", aliases=["保温杯"])
    session.commit()
    query = "量子冰箱" if language == "zh" else "quantum fridge"
    result = run(ActionProductInfo(), ask("product_info", product=query, language=language))
    assert expected in result.text
    assert 1 <= len(result.buttons) <= 3
    assert all(b["payload"].startswith("/product_info{") for b in result.buttons)
    assert result.slots() == {"product": None}


def test_no_product_named_asks_which_with_popular_ones(make, session, action_backend) -> None:
    make.product(name_zh="便携蓝牙音箱", name_en="Portable Bluetooth Speaker")
    make.product(name_zh="缺货口红", name_en="Sold-out Lipstick", stock=0)
    session.commit()
    result = run(ActionProductInfo(), ask("product_info", product=None, language="en",
                                          text="tell me about a product"))
    assert "Which product" in result.text
    assert [b["title"].split(" ¥")[0] for b in result.buttons] == ["Portable Bluetooth Speaker"]


def test_remembered_product_answers_the_follow_up(make, session, action_backend) -> None:
    make.product(name_zh="20000毫安充电宝", name_en="20000mAh Power Bank", aliases=["充电宝"],
                 stock=200)
    session.commit()
    result = run(ActionProductStock(), ask("product_stock", product=None, text="有货吗",
                                           slots={"product": "充电宝"}))
    assert "20000毫安充电宝" in result.text and "有现货" in result.text


@pytest.mark.parametrize("language, stock, expected, forbidden", [
    ("zh", 0, "目前缺货", ["有现货", "可以下单"]),
    ("en", 0, "out of stock", ["In stock", "available to order."]),
    ("zh", 3, "仅剩 3 件", ["缺货"]),
    ("en", 3, "only 3 left", ["out of stock"]),
    ("en", 80, "In stock and available to order.", ["only", "out of stock"]),
])
def test_stock_is_said_as_it_is(make, session, action_backend, language, stock, expected,
                                forbidden) -> None:
    make.product(name_zh="65W氮化镓充电器", name_en="65W GaN Charger", aliases=["充电头", "charger"],
                 stock=stock)
    session.commit()
    query = "充电头" if language == "zh" else "charger"
    result = run(ActionProductStock(), ask("product_stock", product=query, language=language))
    assert expected in result.text
    for word in forbidden:
        assert word not in result.text


def test_out_of_stock_product_info_promises_no_delivery(make, session, action_backend) -> None:
    make.product(name_zh="哑光口红", name_en="Matte Lipstick", aliases=["口红"], stock=0)
    session.commit()
    result = run(ActionProductInfo(), ask("product_info", product="口红"))
    assert "缺货" in result.text and "48小时内发货" not in result.text and "配送" not in result.text


def test_stock_is_read_live_not_from_a_stale_copy(make, session, action_backend) -> None:
    product = make.product(name_zh="机械键盘 K8", name_en="Mechanical Keyboard K8", stock=10)
    session.commit()
    assert "有现货" in run(ActionProductStock(), ask("product_stock", product="机械键盘")).text
    product.stock = 0
    session.commit()
    assert "缺货" in run(ActionProductStock(), ask("product_stock", product="机械键盘")).text


def test_every_demo_product_button_finds_its_product(session, cipher, action_backend) -> None:
    """Smoke test on the demo catalogue: a name offered on a button must resolve to itself."""
    demo_data.load(session, cipher=cipher)
    session.commit()
    from sqlalchemy import select

    from ticketing.core.models import Product

    for product in session.scalars(select(Product)):
        for name in (product.name_zh, product.name_en):
            assert catalog.resolve(session, query=name).product is product, name
    session.rollback()
    result = run(ActionProductInfo(), ask("product_info", product="耳机"))
    assert result.buttons and len(result.buttons) <= 3


def test_a_stray_entity_fragment_does_not_hide_the_product(make, session, action_backend) -> None:
    """The NLU may tag "那" next to "蓝牙耳机" (or a lone space): the real name wins."""
    make.product(name_zh="无线蓝牙耳机 Pro", name_en="Wireless Bluetooth Earbuds Pro",
                 aliases=["蓝牙耳机"], price_cents=29900)
    session.commit()
    state = tracker(sender_id=VISITOR, slots={"language": "zh"}, text="那蓝牙耳机多少钱",
                    intent="product_info", entities=[{"entity": "product", "value": "那"},
                                                     {"entity": "product", "value": "蓝牙耳机"}])
    result = run(ActionProductInfo(), state)
    assert "价格：¥299.00" in result.text and result.buttons == []


@pytest.mark.parametrize("language, button", [("zh", "到货提醒我"), ("en", "Notify me when it's back")])
def test_a_sold_out_product_offers_a_restock_notice_and_no_ticket(make, session, action_backend,
                                                                  language, button) -> None:
    from sqlalchemy import select

    from ticketing.core.models import Ticket

    make.product(name_zh="哑光口红", name_en="Matte Lipstick", aliases=["口红", "lipstick"],
                 stock=0)
    session.commit()
    result = run(ActionProductStock(), ask("product_stock", product="口红", language=language))
    [offer] = [b for b in result.buttons if b["title"] == button]
    assert offer["payload"].startswith("/restock_notice")
    assert session.scalars(select(Ticket)).all() == []


def test_an_available_product_offers_no_restock_notice(make, session, action_backend) -> None:
    make.product(name_zh="机械键盘 K8", name_en="Mechanical Keyboard K8", aliases=["键盘"],
                 stock=30)
    session.commit()
    result = run(ActionProductStock(), ask("product_stock", product="键盘"))
    assert not any(b["payload"].startswith("/restock_notice") for b in result.buttons)


def test_the_restock_notice_is_stored_once_for_a_verified_customer(make, session,
                                                                   action_backend) -> None:
    from sqlalchemy import select

    from actions.products import ActionRestockNotice
    from ticketing.core.models import RestockSubscription
    from ticketing.shop import customers

    lipstick = make.product(name_zh="哑光口红", name_en="Matte Lipstick", aliases=["口红"],
                            stock=0)
    alice = make.customer()
    customers.link_identity(session, channel="telegram", external_id="77", customer_id=alice.id)
    session.commit()
    state = tracker(sender_id="telegram:77", slots={"language": "en", "verified": True},
                    text="/restock_notice", intent="restock_notice",
                    entities=[{"entity": "product", "value": "哑光口红"}])
    first = run(ActionRestockNotice(), state)
    again = run(ActionRestockNotice(), state)  # a double click: still one wish
    assert "as soon as Matte Lipstick is back" in first.text and again.text == first.text
    wishes = session.scalars(select(RestockSubscription)).all()
    assert [(w.customer_id, w.product_id, w.notified_at) for w in wishes] == [
        (alice.id, lipstick.id, None)]
    session.rollback()


def test_a_guest_is_asked_to_verify_before_a_restock_notice(make, session, action_backend) -> None:
    from actions.products import ActionRestockNotice

    make.product(name_zh="哑光口红", name_en="Matte Lipstick", aliases=["口红"], stock=0)
    session.commit()
    result = run(ActionRestockNotice(), ask("restock_notice", product="口红"))
    assert result.responses == ["utter_verify_first"]
