"""Customers from the shop: PII encrypted on the way in and never echoed, adoption by phone,
idempotent replays, out-of-order versions and the shipping-notice opt-out."""

from __future__ import annotations

from sqlalchemy import select, text

from tests.ticketing.shop.ingest.shop_rows import at, customer, one, run, statuses
from ticketing.core.models import Customer, Segment
from ticketing.shop import customers as shop_customers
from ticketing.shop.ingest import views


def _customer(session) -> Customer:
    return session.scalars(select(Customer).where(Customer.external_id == "C-1")).one()


def test_create_encrypts_phone_and_address(session, cipher) -> None:
    assert one(session, cipher, "customers", customer()).status.value == "created"
    stored = _customer(session)
    assert (stored.segment, stored.language, stored.shipping_notices_opt_out) == \
        (Segment.VIP, "en", False)
    raw = session.execute(text("SELECT phone_enc, address_enc FROM customers")).one()
    assert b"13800138000" not in raw[0] and "世纪大道".encode() not in raw[1]
    assert shop_customers.find_by_phone(session, cipher=cipher, phone="13800138000").id == \
        stored.id
    view = views.customer_view(session, external_id="C-1", cipher=cipher)
    assert (view["phone"], view["address"]) == ("138****8000", "上海市浦东新******")


def test_update_replay_and_stale(session, cipher) -> None:
    one(session, cipher, "customers", customer())
    newer = customer(address="北京市海淀区中关村大街1号", segment="regular", updated_at=at(1))
    assert one(session, cipher, "customers", newer).status.value == "updated"
    assert one(session, cipher, "customers", newer).status.value == "unchanged"
    older = customer(name="旧名字", updated_at=at(3))
    assert one(session, cipher, "customers", older).status.value == "stale"
    stored = _customer(session)
    assert stored.name == "张伟" and stored.segment is Segment.REGULAR
    assert cipher.decrypt(stored.address_enc, field="address") == "北京市海淀区中关村大街1号"


def test_absent_phone_is_kept_and_null_erases_it(session, cipher) -> None:
    one(session, cipher, "customers", customer())
    without = customer(updated_at=at(2))
    del without["phone"]
    assert one(session, cipher, "customers", without).status.value == "unchanged"
    assert _customer(session).phone_enc is not None
    assert one(session, cipher, "customers", customer(phone=None, updated_at=at(1))
               ).status.value == "updated"
    assert _customer(session).phone_enc is None and _customer(session).phone_lookup is None


def test_a_malformed_phone_is_refused_without_repeating_it(session, cipher) -> None:
    result = one(session, cipher, "customers", customer(phone="138-abc-99"))
    assert (result.error.code, result.error.field) == ("invalid_phone", "phone")
    assert "138" not in result.error.message and result.key == "C-1"
    assert session.scalar(select(Customer.id)) is None


def test_a_known_customer_is_adopted_by_phone_not_duplicated(session, cipher, make) -> None:
    known = make.customer(phone="13800138000")
    assert one(session, cipher, "customers", customer()).status.value == "updated"
    assert _customer(session).id == known.id
    taken = one(session, cipher, "customers", customer(external_id="C-2", updated_at=at(1)))
    assert (taken.error.code, taken.error.field) == ("key_taken", "phone")
    assert "13800138000" not in taken.error.message


def test_opt_out_of_shipping_notices_is_recorded(session, cipher) -> None:
    report = run(session, cipher, "customers", customer(shipping_notices_opt_out=True),
                 customer(external_id="C-2", phone="13900139000", segment="celebrity"),
                 customer(external_id="C-3", phone=None, name=""))
    assert statuses(report) == ["created", "invalid_input", "invalid_input"]
    assert report.results[1].error.field == "segment"
    assert _customer(session).shipping_notices_opt_out is True
