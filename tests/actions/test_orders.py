"""track_order, delivery_time and the delayed-parcel ticket, against the real test database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from actions.orders import (
    ActionDeliveryTime,
    ActionOfferDelayTicket,
    ActionOpenDelayTicket,
    ActionTrackOrder,
)
from tests.actions.harness import run, tracker
from ticketing.shop import customers
from ticketing.core.clock import utcnow
from ticketing.core.models import Category, OrderState, Ticket, TrackingEvent

SENDER = "telegram:4242"
NOW = utcnow()


def verified_customer(make, session, *, sender: str = SENDER, language: str = "zh",
                      phone: str = "13812345678", name: str = "张伟"):
    customer = make.customer(phone=phone, language=language, name=name)
    channel, external = sender.split(":")
    customers.link_identity(session, channel=channel, external_id=external,
                            customer_id=customer.id)
    return customer


def on_time_parcel(make, customer, **order_kw):
    order = make.order(customer=customer, state=OrderState.SHIPPED,
                       created_at=NOW - timedelta(days=2), **order_kw)
    make.shipment(order=order, shipped_at=NOW - timedelta(hours=20), promised_days=3)
    return order


def ask(intent: str, *, language: str = "zh", text: str | None = None, order: str | None = None,
        product: str | None = None, slots: dict | None = None, sender: str = SENDER):
    entities = []
    if order:
        entities.append({"entity": "order_id", "value": order})
    if product:
        entities.append({"entity": "product", "value": product})
    all_slots = {"language": language, "verified": True, **(slots or {})}
    default = {"zh": "我的订单到哪了", "en": "where is my order"}[language]
    return tracker(sender_id=sender, slots=all_slots, text=text or default, intent=intent,
                   entities=entities)


# --- track_order -------------------------------------------------------------------------------
@pytest.mark.parametrize("language, words", [
    ("zh", ["顺丰速运", "预计", "商品：无线蓝牙耳机 ×1", "138****5678", "上海市浦东新"]),
    ("en", ["SF Express", "Expected delivery", "Items: Wireless Bluetooth Earbuds ×1",
            "138****5678"]),
])
def test_verified_customer_tracks_a_shipped_order(make, session, action_backend, language,
                                                  words) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice, product=make.product(name_zh="无线蓝牙耳机",
                                                             name_en="Wireless Bluetooth Earbuds"))
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language, order=order.number))
    assert order.number in result.text
    for word in words:
        assert word in result.text
    assert "13812345678" not in result.text and "世纪大道" not in result.text  # masked only
    assert result.slots() == {"order_id": order.number}  # no delay flag: on time
    assert result.buttons == []


def test_order_number_typed_with_spaces_and_label_is_found(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    session.commit()
    spaced = "订单号 " + " ".join(order.number[i:i + 4] for i in range(0, 16, 4))
    result = run(ActionTrackOrder(), ask("track_order", order=spaced))
    assert order.number in result.text


@pytest.mark.parametrize("language, expected", [
    ("zh", "没有找到这个订单，请核对订单号。"),
    ("en", "We could not find that order. Please check the order number."),
])
def test_another_customers_order_is_not_found_and_nothing_leaks(make, session, action_backend,
                                                                language, expected) -> None:
    verified_customer(make, session)
    bob = make.customer(name="李雷", phone="13900001111")
    secret = make.product(name_zh="秘密礼物", name_en="Secret Gift")
    bobs = make.order(customer=bob, state=OrderState.SHIPPED, product=secret)
    make.shipment(order=bobs)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language, order=bobs.number))
    assert result.texts == [expected]
    for leak in ("秘密礼物", "Secret Gift", "139****1111", "SF0", "李雷"):
        assert leak not in result.text
    assert result.slots() == {"order_id": None}  # the refused number is forgotten


@pytest.mark.parametrize("language", ["zh", "en"])
def test_unverified_visitor_is_asked_to_verify_and_sees_no_order(make, session, action_backend,
                                                                 language) -> None:
    someone = make.customer()
    order = on_time_parcel(make, someone)
    session.commit()
    state = tracker(sender_id="widget:anon-9", slots={"language": language},
                    text=order.number, intent="track_order",
                    entities=[{"entity": "order_id", "value": order.number}])
    result = run(ActionTrackOrder(), state)
    assert result.responses == ["utter_verify_first"]
    assert result.texts == [] and result.buttons == []
    assert result.slots() == {}


@pytest.mark.parametrize("language, expected", [
    ("zh", "订单号格式不正确，订单号是16到19位数字。"),
    ("en", "That order number is not valid: order numbers have 16 to 19 digits."),
])
def test_bad_order_number_is_explained_and_forgotten(make, session, action_backend, language,
                                                     expected) -> None:
    verified_customer(make, session)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language, order="12345"))
    assert result.texts == [expected]
    assert result.slots() == {"order_id": None}


@pytest.mark.parametrize("language, prompt, date_word", [
    ("zh", "您想查询哪一笔订单", "月"),
    ("en", "Which order do you mean", "·"),
])
def test_several_orders_are_offered_as_at_most_five_buttons(make, session, action_backend,
                                                            language, prompt, date_word) -> None:
    alice = verified_customer(make, session)
    made = [make.order(customer=alice, created_at=NOW - timedelta(days=d)) for d in range(1, 8)]
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language))
    assert prompt in result.text
    assert len(result.buttons) == 5
    newest = [o.number for o in made[:5]]
    payloads = [b["payload"] for b in result.buttons]
    assert payloads == [f'/track_order{{"order_id": "{n}"}}' for n in newest]
    assert all(date_word in b["title"] and n[-4:] in b["title"]
               for b, n in zip(result.buttons, newest))
    assert result.slots() == {}


def test_a_button_click_answers_that_order(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    first = on_time_parcel(make, alice)
    make.order(customer=alice, state=OrderState.PAID)
    session.commit()
    payload = f'/track_order{{"order_id": "{first.number}"}}'
    payload_entity = json.loads(payload[len("/track_order"):])["order_id"]
    state = tracker(sender_id=SENDER, slots={"language": "en", "verified": True},
                    text=payload, intent="track_order",
                    entities=[{"entity": "order_id", "value": payload_entity}])
    result = run(ActionTrackOrder(), state)
    assert first.number in result.text and "SF Express" in result.text


def test_a_single_order_is_used_without_asking(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.PAID)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order"))
    assert result.buttons == []
    assert order.number in result.text and "已付款" in result.text and "备货" in result.text
    assert result.slots() == {"order_id": order.number}


@pytest.mark.parametrize("language, expected", [
    ("zh", "您的账户下还没有订单"), ("en", "I can't find any orders on your account"),
])
def test_customer_without_orders_is_told_so(make, session, action_backend, language,
                                            expected) -> None:
    verified_customer(make, session)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language))
    assert expected in result.text and result.buttons == []


def test_remembered_order_slot_is_used(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    make.order(customer=alice)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", slots={"order_id": order.number}))
    assert order.number in result.text and result.buttons == []


# --- delayed parcels ---------------------------------------------------------------------------
@pytest.mark.parametrize("language, words", [
    ("zh", ["非常抱歉，您的包裹晚了", "超过承诺送达时间"]),
    ("en", ["I'm sorry, your parcel is running late", "past its promised delivery date"]),
])
def test_late_parcel_is_acknowledged_and_flagged(make, session, action_backend, language,
                                                 words) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.SHIPPED, created_at=NOW - timedelta(days=8))
    make.shipment(order=order, shipped_at=NOW - timedelta(days=6), promised_days=3)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language=language, order=order.number))
    for word in words:
        assert word in result.text
    assert result.slots() == {"order_id": order.number, "parcel_delayed": True}


def test_stalled_parcel_says_since_when(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.SHIPPED, created_at=NOW - timedelta(days=4))
    make.shipment(order=order, shipped_at=NOW - timedelta(days=3), promised_days=5)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", language="en", order=order.number))
    assert "has not moved since" in result.text
    assert result.slots()["parcel_delayed"] is True


def test_carrier_exception_is_explained(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    session.refresh(order)
    shipment = order.shipments[0]
    session.add(TrackingEvent(shipment_id=shipment.id, at=NOW - timedelta(hours=2),
                              status="exception", location_zh="杭州", location_en="Hangzhou",
                              description_zh="包裹外包装破损，正在核实处理",
                              description_en="Outer packaging damaged, being checked"))
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", order=order.number))
    assert "快递公司报告这个包裹出现了异常" in result.text and "外包装破损" in result.text
    assert result.slots()["parcel_delayed"] is True


def test_an_old_delay_flag_is_cleared_for_a_parcel_on_time(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    session.commit()
    result = run(ActionTrackOrder(), ask("track_order", order=order.number,
                                         slots={"parcel_delayed": True}))
    assert result.slots() == {"order_id": order.number, "parcel_delayed": None}


@pytest.mark.parametrize("language, words", [
    ("zh", ["创建工单", "物流组", "不用了"]), ("en", ["open a ticket", "logistics team", "No thanks"]),
])
def test_the_offer_asks_with_two_buttons_and_clears_the_flag(language, words) -> None:
    result = run(ActionOfferDelayTicket(), ask("track_order", language=language,
                                               slots={"parcel_delayed": True}))
    assert [b["payload"] for b in result.buttons] == ["/affirm", "/deny"]
    said = result.text + " ".join(b["title"] for b in result.buttons)
    for word in words:
        assert word in said
    assert result.slots() == {"parcel_delayed": None}


@pytest.mark.parametrize("language, word", [("zh", "小时内"), ("en", "within")])
def test_accepting_the_offer_opens_a_logistics_ticket_about_the_order(make, session,
                                                                      action_backend, language,
                                                                      word) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.SHIPPED, created_at=NOW - timedelta(days=8))
    make.shipment(order=order, shipped_at=NOW - timedelta(days=6), promised_days=3)
    session.commit()
    text = {"zh": "好的", "en": "yes please"}[language]
    result = run(ActionOpenDelayTicket(),
                 ask("affirm", language=language, text=text, slots={"order_id": order.number}))
    ticket = session.scalars(select(Ticket)).one()
    assert ticket.category is Category.LOGISTICS
    assert ticket.order_id == order.id and ticket.customer_id == alice.id
    assert ticket.number in result.text and word in result.text
    assert result.custom[0]["kefu"]["handoff"] is True
    assert "pause" in result.event_types()


# --- delivery_time -----------------------------------------------------------------------------
@pytest.mark.parametrize("language, words", [
    ("zh", ["48小时内发货", "验证身份后"]), ("en", ["within 48 hours", "Once you are verified"]),
])
def test_delivery_time_for_a_visitor_is_the_general_promise(session, action_backend, language,
                                                            words) -> None:
    state = tracker(sender_id="widget:anon-3", slots={"language": language},
                    text="多久能到", intent="delivery_time")
    result = run(ActionDeliveryTime(), state)
    for word in words:
        assert word in result.text
    assert result.responses == []


def test_delivery_time_with_an_order_number_needs_verification(session, action_backend) -> None:
    state = tracker(sender_id="widget:anon-3", slots={"language": "en"},
                    text="when will 2026112500000001 arrive", intent="delivery_time",
                    entities=[{"entity": "order_id", "value": "2026112500000001"}])
    result = run(ActionDeliveryTime(), state)
    assert result.responses == ["utter_verify_first"] and "within 48 hours" in result.text


@pytest.mark.parametrize("language, word", [("zh", "预计"), ("en", "Expected delivery by")])
def test_delivery_time_of_the_one_parcel_on_its_way(make, session, action_backend, language,
                                                    word) -> None:
    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    make.order(customer=alice, state=OrderState.COMPLETED, created_at=NOW - timedelta(days=30))
    session.commit()
    result = run(ActionDeliveryTime(), ask("delivery_time", language=language, text="多久到"))
    assert order.number in result.text and word in result.text
    assert result.slots() == {"order_id": order.number}


def test_delivery_time_offers_only_undelivered_orders(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    paid = make.order(customer=alice, state=OrderState.PAID, created_at=NOW - timedelta(days=1))
    shipped = on_time_parcel(make, alice)
    make.order(customer=alice, state=OrderState.COMPLETED, created_at=NOW - timedelta(hours=3))
    session.commit()
    result = run(ActionDeliveryTime(), ask("delivery_time", language="en",
                                           text="when will my stuff arrive"))
    assert "still on their way" in result.text
    assert sorted(b["payload"] for b in result.buttons) == sorted(
        f'/delivery_time{{"order_id": "{o.number}"}}' for o in (paid, shipped))


def test_delivery_time_of_a_paid_order_gives_the_dispatch_terms(make, session,
                                                               action_backend) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.PAID)
    session.commit()
    result = run(ActionDeliveryTime(), ask("delivery_time", order=order.number))
    assert "还没有发货" in result.text and "48小时内发货" in result.text


def test_delivery_time_without_open_orders_is_the_general_promise(make, session,
                                                                  action_backend) -> None:
    alice = verified_customer(make, session)
    make.order(customer=alice, state=OrderState.COMPLETED)
    session.commit()
    result = run(ActionDeliveryTime(), ask("delivery_time", language="en", text="how long"))
    assert "within 48 hours" in result.text and result.buttons == []


def test_delivery_time_of_a_delayed_parcel_offers_the_ticket(make, session, action_backend) -> None:
    alice = verified_customer(make, session)
    order = make.order(customer=alice, state=OrderState.SHIPPED, created_at=NOW - timedelta(days=8))
    make.shipment(order=order, shipped_at=NOW - timedelta(days=6), promised_days=3)
    session.commit()
    result = run(ActionDeliveryTime(), ask("delivery_time", text="到底哪天能到"))
    assert "非常抱歉" in result.text and result.slots()["parcel_delayed"] is True


@pytest.mark.parametrize("stock, expected, absent", [
    (30, "全国包邮，48小时内发货", "缺货"),
    (0, "缺货", "48小时内发货"),
])
def test_delivery_time_for_a_product_never_promises_missing_stock(make, session, action_backend,
                                                                  stock, expected, absent) -> None:
    product = make.product(name_zh="20000毫安充电宝", name_en="20000mAh Power Bank", stock=stock,
                           aliases=["充电宝"])
    product.delivery_zh = "全国包邮，48小时内发货"
    session.commit()
    state = tracker(sender_id="widget:anon-4", slots={"language": "zh"}, text="充电宝几天能到",
                    intent="delivery_time", entities=[{"entity": "product", "value": "充电宝"}])
    result = run(ActionDeliveryTime(), state)
    assert expected in result.text and absent not in result.text


def test_backend_failure_apologises_without_a_stack_trace(make, session, action_backend,
                                                          monkeypatch) -> None:
    from ticketing.shop import logistics

    alice = verified_customer(make, session)
    order = on_time_parcel(make, alice)
    session.commit()

    def broken(*_a, **_k):
        raise TimeoutError("carrier API timed out")

    monkeypatch.setattr(logistics, "summary", broken)
    result = run(ActionTrackOrder(), ask("track_order", order=order.number))
    assert "抱歉" in result.text and "timed out" not in result.text
    assert any(c["kefu"].get("handoff") for c in result.custom)
