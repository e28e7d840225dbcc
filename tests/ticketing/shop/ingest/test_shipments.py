"""Shipments and scans from the shop (rules §ORD-2, §ING-2): scans accumulate, and shipped,
delivered and parcel problems are told once each, in the customer's language, unless they
opted out."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from tests.ticketing.shop.ingest.shop_rows import (
    ORDER_NO,
    at,
    customer,
    one,
    order,
    outbox,
    run,
    seed,
    shipment,
    statuses,
)
from ticketing.core.models import Customer, Order, Shipment, TrackingEvent
from ticketing.shop import customers as shop_customers, logistics

EXCEPTION = {"external_id": "E-2", "at": at(2), "status": "exception",
             "description_zh": "包裹破损", "description_en": "The parcel was damaged"}
DELIVERED = {"external_id": "E-3", "at": at(1), "status": "delivered"}


def _events(session) -> list[TrackingEvent]:
    return list(session.scalars(select(TrackingEvent).order_by(TrackingEvent.at)))


def test_shipped_is_told_once_in_the_language_of_the_newest_channel(session, cipher) -> None:
    seed(session, cipher, order_state="shipped")
    owner = session.scalars(select(Customer).where(Customer.external_id == "C-1")).one()
    identity = shop_customers.link_identity(session, channel="telegram", external_id="77",
                                            customer_id=owner.id)
    identity.language = "zh"
    assert one(session, cipher, "shipments", shipment()).status.value == "created"
    assert one(session, cipher, "shipments", shipment()).status.value == "unchanged"
    [message] = outbox(session, "shipping_update")
    assert message.conversation_id == "telegram:77" and message.language == "zh"
    assert message.text.startswith(f"您的订单 {ORDER_NO} 已发货，由顺丰速运承运")
    # the bot now tells the parcel's story from these rows
    text = logistics.summary(session, order=session.scalars(select(Order)).one(),
                             language="en").text
    assert "SF1234567890" in text and "Shenzhen" in text


def test_scans_accumulate_and_problems_and_delivery_are_told_once(session, cipher) -> None:
    seed(session, cipher, order_state="shipped")
    one(session, cipher, "shipments", shipment())
    later = shipment(events=[EXCEPTION], updated_at=at(2))  # the first scan not resent
    assert one(session, cipher, "shipments", later).status.value == "updated"
    assert [e.status for e in _events(session)] == ["picked_up", "exception"]
    resent = shipment(events=[shipment()["events"][0], EXCEPTION, DELIVERED], updated_at=at(1))
    assert one(session, cipher, "shipments", resent).status.value == "updated"
    assert one(session, cipher, "shipments", resent).status.value == "unchanged"
    # the order row saying "delivered" too is the same event: not told twice
    run(session, cipher, "orders", order(state="delivered", updated_at=at(0.5)))
    texts = [m.text for m in outbox(session, "shipping_update")]
    assert len(texts) == 3
    assert texts[1] == (f"There is a problem with the parcel of order {ORDER_NO}: The parcel "
                        "was damaged. We are following it up and will let you know as soon as "
                        "there is news.")
    assert "has been delivered" in texts[2]
    scan = _events(session)[0]
    assert (scan.description_zh, scan.description_en) == ("快递员已揽收", "Picked up by the carrier")
    assert scan.location_zh == "深圳"


def test_opted_out_customers_are_not_told(session, cipher) -> None:
    seed(session, cipher, order_state="shipped")
    run(session, cipher, "customers", customer(shipping_notices_opt_out=True, updated_at=at(4)))
    run(session, cipher, "shipments", shipment(events=[EXCEPTION, DELIVERED]))
    assert outbox(session) == []
    assert len(_events(session)) == 2


def test_references_keys_and_versions(session, cipher) -> None:
    seed(session, cipher, order_state="shipped")
    one(session, cipher, "shipments", shipment(updated_at=at(1)))
    report = run(session, cipher, "shipments",
                 shipment(updated_at=at(2), carrier="ZTO"),
                 shipment(external_id="S-2", order="2026113099999999"),
                 shipment(external_id="S-3"),  # the same tracking number as S-1
                 shipment(external_id="S-4", tracking_number="T4",
                          events=[{"at": at(1), "status": "lost"}]),
                 shipment(external_id="S-5", tracking_number="T5", shipped_at="yesterday"))
    assert statuses(report) == ["stale", "order_not_found", "key_taken", "unknown_state",
                                "invalid_input"]
    assert report.results[3].error.field == "events.0.status"
    stored = session.scalars(select(Shipment)).one()
    assert stored.carrier == "SF" and stored.promised_by > stored.shipped_at


def test_two_batches_racing_tell_the_customer_once(session_factory, cipher) -> None:
    with session_factory.begin() as s:
        seed(s, cipher, order_state="shipped")
    barrier = threading.Barrier(2)

    def send() -> str:
        barrier.wait()
        with session_factory.begin() as s:
            return statuses(run(s, cipher, "shipments", shipment(events=[EXCEPTION])))[0]

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: send(), range(2)))
    # one creates; the other sees it (SQLite queues writers) or loses the race and is told so
    assert outcomes in (["created", "unchanged"], ["created", "key_taken"])
    with session_factory() as s:
        assert len(outbox(s, "shipping_update")) == 2  # shipped + the problem, once each
        assert s.scalar(select(func.count()).select_from(Shipment)) == 1
