"""The bot changes an unshipped order's delivery address (ticketing.shop.addresses)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ticketing.core.errors import AddressLocked, InvalidAddress, OrderNotFound
from ticketing.core.models import AuditLog, OrderState
from ticketing.shop.addresses import CHANGED, change_delivery_address

NEW = "王小明 13800138000 上海市浦东新区世纪大道100号2单元301"


def _audits(session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.action == CHANGED)))


@pytest.mark.parametrize("state", [OrderState.PENDING_PAYMENT, OrderState.PAID])
def test_an_unshipped_order_gets_the_new_address_encrypted_and_audited(make, session,
                                                                       state) -> None:
    alice = make.customer()
    order = make.order(customer=alice, state=state)
    change = change_delivery_address(session, customer_id=alice.id, number=order.number,
                                     address=f"  {NEW}\n", cipher=make.cipher)
    assert change.changed and change.masked == "王小明 13******"
    assert NEW.encode() not in order.address_enc  # encrypted at rest
    assert make.cipher.decrypt(order.address_enc, field="address") == NEW
    [entry] = _audits(session)
    assert entry.target_id == order.number and entry.actor_id == alice.id
    assert NEW not in str(entry.details) and "13800138000" not in str(entry.details)


def test_the_same_address_again_changes_nothing(make, session) -> None:
    alice = make.customer()
    order = make.order(customer=alice, state=OrderState.PAID)
    change_delivery_address(session, customer_id=alice.id, number=order.number, address=NEW,
                            cipher=make.cipher)
    again = change_delivery_address(session, customer_id=alice.id, number=order.number,
                                    address=NEW, cipher=make.cipher)
    assert not again.changed and len(_audits(session)) == 1


@pytest.mark.parametrize("state", [OrderState.SHIPPED, OrderState.DELIVERED,
                                   OrderState.COMPLETED, OrderState.CANCELLED])
def test_shipped_or_ended_orders_are_refused_and_unchanged(make, session, state) -> None:
    alice = make.customer()
    order = make.order(customer=alice, state=state)
    before = order.address_enc
    with pytest.raises(AddressLocked):
        change_delivery_address(session, customer_id=alice.id, number=order.number,
                                address=NEW, cipher=make.cipher)
    assert order.address_enc == before and not _audits(session)


def test_only_the_customers_own_order(make, session) -> None:
    alice, bob = make.customer(), make.customer()
    order = make.order(customer=alice, state=OrderState.PAID)
    with pytest.raises(OrderNotFound):
        change_delivery_address(session, customer_id=bob.id, number=order.number, address=NEW,
                                cipher=make.cipher)
    assert not _audits(session)


@pytest.mark.parametrize("text", ["", "上海", "abc", "我家楼下", "x" * 201 + "1"])
def test_what_is_not_an_address_is_refused(make, session, text) -> None:
    alice = make.customer()
    order = make.order(customer=alice, state=OrderState.PAID)
    with pytest.raises(InvalidAddress):
        change_delivery_address(session, customer_id=alice.id, number=order.number,
                                address=text, cipher=make.cipher)
