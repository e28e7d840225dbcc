"""change_shipping_address: the bot changes an unshipped order's address itself (a form, the
service, a confirmation), an honest "no" after shipping; addresses only ever masked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rasa_sdk.executor import CollectingDispatcher

from actions.address import (
    ActionAskNewAddress,
    ActionChangeAddress,
    ActionKeepAddress,
    ActionSubmitAddress,
    ValidateAddressForm,
)
from tests.actions.harness import run, tracker
from ticketing.shop import customers
from ticketing.core.models import Customer, Order, OrderState, Ticket

SENDER = "telegram:6001"


def verified(session, make, *, language: str = "zh") -> Customer:
    customer = make.customer(language=language, address="上海市浦东新区世纪大道100号")
    customers.link_identity(session, channel="telegram", external_id="6001",
                            customer_id=customer.id)
    return customer


def asking(number: str | None = None, *, language: str = "zh", sender: str = SENDER):
    entities = [{"entity": "order_id", "value": number}] if number else None
    text = f"订单 {number} 改地址" if number else "收货地址填错了"
    return tracker(sender_id=sender, slots={"language": language, "verified": True},
                   text=text, intent="change_shipping_address", entities=entities)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_before_shipping_the_bot_starts_the_address_form(
        session, make, cipher, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.PAID)
    order.address_enc = cipher.encrypt("北京市海淀区中关村大街1号3单元502", field="address")
    session.commit()
    result = run(ActionChangeAddress(), asking(order.number, language=language))
    assert "北京市海淀区******" in result.text and "中关村" not in result.text
    assert session.scalars(select(Ticket)).all() == [] and "pause" not in result.event_types()
    assert result.slots()["address_changeable"] is True
    assert result.slots()["address_order"] == order.number
    assert ("直接在这里修改" in result.text) if language == "zh" else ("right here" in result.text)


def _form(number, text, *, language="zh"):
    return tracker(sender_id=SENDER, text=text, intent="inform", slots={
        "language": language, "verified": True, "address_order": number, "new_address": text,
        "address_changeable": True}, active_loop="address_form", requested_slot="new_address")


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_new_address_is_applied_and_confirmed_masked(session, make, cipher, action_backend,
                                                         language) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.PAID)
    session.commit()
    new, number = "李四 13900139000 杭州市西湖区文三路200号5幢", order.number
    ask = run(ActionAskNewAddress(), _form(order.number, None, language=language))
    assert ("手机号和详细地址" in ask.text) if language == "zh" else ("full address" in ask.text)
    result = run(ActionSubmitAddress(), _form(order.number, new, language=language))
    session.expire_all()
    assert cipher.decrypt(session.get(Order, order.id).address_enc, field="address") == new
    session.rollback()  # SQLite: a reading transaction holds the write lock here
    assert number in result.text and "李四 139******" in result.text
    assert "13900139000" not in result.text and "文三路" not in result.text
    assert result.slots() == {"address_order": None, "new_address": None,
                              "address_changeable": None}
    # the same answer again (a repeated message): nothing changes, the customer is told so
    again = run(ActionSubmitAddress(), _form(number, new, language=language))
    assert ("不需要修改" in again.text) if language == "zh" else ("nothing to change" in again.text)


def test_an_order_shipped_meanwhile_is_refused_unchanged(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    before = order.address_enc
    session.commit()
    result = run(ActionSubmitAddress(), _form(order.number, "李四 13900139000 杭州市西湖区文三路200号"))
    session.expire_all()
    assert "不能再修改" in result.text and session.get(Order, order.id).address_enc == before
    session.rollback()
    assert result.slots()["address_order"] is None


@pytest.mark.parametrize(("text", "kept"), [("上海", False), ("我家楼下那个快递柜", False),
                                             ("王五 13700137000 南京市鼓楼区中山路1号", True)])
def test_what_is_not_an_address_is_asked_again(action_backend, text, kept) -> None:
    dispatcher = CollectingDispatcher()
    state = _form("2026112500000001", text)
    found = ValidateAddressForm().validate_new_address(text, dispatcher, state, {})
    assert (found["new_address"] is not None) is kept
    assert bool(dispatcher.messages) is not kept  # the refusal says what is missing


def test_the_form_starting_with_an_empty_address_says_nothing(action_backend) -> None:
    """The form validates the slot emptied by action_change_address as it starts: no "that is
    not an address" before the customer has typed one."""
    dispatcher = CollectingDispatcher()
    found = ValidateAddressForm().validate_new_address(
        None, dispatcher, _form("2026112500000001", "我要修改收货地址"), {})
    assert found == {"new_address": None} and dispatcher.messages == []


def test_cancel_keeps_the_old_address(session, make, action_backend) -> None:
    result = run(ActionKeepAddress(), _form("2026112500000001", None, language="en"))
    assert "keeps its current address" in result.text
    assert result.slots()["address_changeable"] is None


def test_without_an_order_address_the_customers_is_shown_masked(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.PENDING_PAYMENT)
    session.commit()
    result = run(ActionChangeAddress(), asking(order.number))
    assert "上海市浦东新******" in result.text and "世纪大道" not in result.text


@pytest.mark.parametrize("language, words", [("zh", "无法修改"), ("en", "no longer change")])
def test_after_shipping_the_shop_cannot_change_it_and_offers_a_person(
        session, make, action_backend, language, words) -> None:
    customer = verified(session, make, language=language)
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    shipment = make.shipment(order=order)
    session.commit()
    result = run(ActionChangeAddress(), asking(order.number, language=language))
    assert words in result.text and shipment.tracking_number in result.text
    assert result.buttons[0]["payload"] == "/human_handoff"
    assert session.scalars(select(Ticket)).all() == [] and "pause" not in result.event_types()
    assert "世纪大道" not in result.text


@pytest.mark.parametrize("state, words", [(OrderState.DELIVERED, "已签收"),
                                          (OrderState.CANCELLED, "已取消")])
def test_delivered_or_cancelled_orders(session, make, action_backend, state, words) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=state)
    session.commit()
    result = run(ActionChangeAddress(), asking(order.number))
    assert words in result.text and session.scalars(select(Ticket)).all() == []


def test_no_order_named_offers_the_orders_whose_address_can_matter(
        session, make, action_backend) -> None:
    customer = verified(session, make)
    paid = make.order(customer=customer, state=OrderState.PAID)
    shipped = make.order(customer=customer, state=OrderState.SHIPPED)
    make.order(customer=customer, state=OrderState.DELIVERED)
    session.commit()
    result = run(ActionChangeAddress(), asking(language="en"))
    assert sorted(b["payload"] for b in result.buttons) == sorted(
        f'/change_shipping_address{{"order_id": "{o.number}"}}' for o in (paid, shipped))
    assert "Which order" in result.text and session.scalars(select(Ticket)).all() == []


def test_nothing_left_to_change(session, make, action_backend) -> None:
    customer = verified(session, make)
    make.order(customer=customer, state=OrderState.DELIVERED)
    session.commit()
    result = run(ActionChangeAddress(), asking())
    assert "我的地址" in result.text and result.buttons == []


def test_the_only_open_order_is_taken_without_asking(session, make, action_backend) -> None:
    customer = verified(session, make)
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    session.commit()
    result = run(ActionChangeAddress(), asking())
    assert order.number in result.text and result.slots()["order_id"] == order.number


@pytest.mark.parametrize("language", ["zh", "en"])
def test_another_customers_order_is_not_found(session, make, action_backend, language) -> None:
    verified(session, make, language=language)
    theirs = make.order(customer=make.customer(address="广州市天河区体育西路9号"),
                        state=OrderState.PAID)
    session.commit()
    result = run(ActionChangeAddress(), asking(theirs.number, language=language))
    assert ("没有找到这个订单" in result.text) if language == "zh" else ("could not find" in result.text)
    assert "广州" not in result.text and session.scalars(select(Ticket)).all() == []
    # the wrong number is not kept, and no form starts
    assert result.slots() == {"order_id": None, "address_changeable": False}


def test_unverified_visitor_must_verify_first(session, make, action_backend) -> None:
    order = make.order(customer=make.customer(), state=OrderState.PAID)
    session.commit()
    result = run(ActionChangeAddress(), asking(order.number, sender="widget:anon-3"))
    assert result.responses == ["utter_verify_first"] and order.number not in result.text
