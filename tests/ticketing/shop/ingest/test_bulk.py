"""A batch reads in bulk and writes its rows together, yet answers and stores exactly what the
same rows sent one at a time (each in its own SAVEPOINT) would; a record another request writes
after the batch's pre-read is found, not duplicated; the statements a batch runs do not grow
with its rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from tests.ticketing.shop.ingest.shop_rows import (
    NOW,
    ORDER_NO,
    at,
    customer,
    order,
    outbox,
    product,
    refund,
    run,
    shipment,
    statuses,
)
from ticketing.core.models import (
    Customer,
    CustomerNotice,
    Order,
    OrderItem,
    Product,
    RefundRequest,
    RestockSubscription,
    Shipment,
    TrackingEvent,
)
from ticketing.core.pii import PiiCipher
from ticketing.shop import ingest
from ticketing.shop.ingest.lookups import ORDER_WITH_ITEMS, Lookups

N2, N3, N6 = "2026113000000002", "2026113000000003", "2026113000000006"
SCAN_IN_TRANSIT = {"at": at(4.5), "status": "in_transit"}  # a scan the shop sent without an id


def _seed(session: Session, cipher: PiiCipher, make: Any) -> None:
    """Some of everything already held, and a customer waiting for P-2 to be back."""
    make.customer(phone="13700137000")  # known by phone from a chat, not yet by the shop
    for kind, rows in (
            ("products", [product(), product(external_id="P-2", sku="SKU-2", stock=0),
                          product(external_id="P-3")]),
            ("customers", [customer(), customer(external_id="C-2", phone="13900139000")]),
            ("orders", [order(), order(number=N2, customer="C-2", state="shipped")]),
            ("shipments", [shipment(events=[shipment()["events"][0], SCAN_IN_TRANSIT])]),
            ("refunds", [refund(amount_cents=100)])):
        assert set(statuses(run(session, cipher, kind, *rows))) == {"created"}, kind
    waiting = session.scalars(select(Customer).where(Customer.external_id == "C-1")).one()
    p2 = session.scalars(select(Product).where(Product.external_id == "P-2")).one()
    session.add(RestockSubscription(customer_id=waiting.id, product_id=p2.id, created_at=NOW))
    session.flush()


MIXED: dict[str, tuple[list[Any], list[str]]] = {
    "products": ([
        product(price_cents=100, updated_at=at(1)), product(price_cents=100, updated_at=at(1)),
        product(updated_at=at(2)),
        product(external_id="P-4", sku="SKU-4"), product(external_id="P-5", sku="SKU-4"),
        product(external_id="P-4", sku="SKU-4b", updated_at=at(1)),
        product(external_id="P-6", sku="SKU-4"),
        product(external_id="P-2", sku="SKU-2", stock=5, updated_at=at(1)),
        product(external_id="P-7", stock=0), product(external_id="P-7", stock=3, updated_at=at(1)),
        "not an object", product(external_id="P-8", price_cents=-1),
    ], ["updated", "unchanged", "stale", "created", "key_taken", "updated", "created", "updated",
        "created", "updated", "invalid_input", "invalid_amount"]),
    "customers": ([
        customer(address="北京市海淀区中关村大街1号", updated_at=at(1)),
        customer(external_id="C-3", phone="13700137000"),
        customer(external_id="C-4"),
        customer(phone="13600136000", updated_at=at(0.5)),
        customer(external_id="C-4"),
        customer(external_id="C-5", phone="13500135000"),
        customer(external_id="C-6", phone="13500135000"),
        customer(external_id="C-5", phone=None, updated_at=at(1)),
        customer(external_id="C-6", phone="13500135000"),
        customer(external_id="C-7", phone="bad"),
    ], ["updated", "updated", "key_taken", "updated", "created", "created", "key_taken",
        "updated", "created", "invalid_phone"]),
    "orders": ([
        order(state="shipped", updated_at=at(1)), order(state="shipped", updated_at=at(1)),
        order(number=N3, customer="C-2"),
        order(number=N3, customer="C-2", paid_cents=20400, updated_at=at(1), items=[
            {"product": "SKU-2", "quantity": 1, "unit_price_cents": 500},
            {"product": "P-1", "quantity": 1, "unit_price_cents": 19900}]),
        order(number="2026113000000004", customer="C-404"),
        order(number="2026113000000005",
              items=[{"product": "P-404", "quantity": 1, "unit_price_cents": 1}]),
        order(number=N2, customer="C-2", updated_at=at(1)),
        order(number=N2, customer="C-2", state="delivered", paid_cents=200, updated_at=at(0.8),
              items=[{"product": "P-3", "quantity": 2, "unit_price_cents": 100}]),
        order(number=N6, state="delivered", delivered_at=at(1), updated_at=at(1)),
        order(customer="C-2", updated_at=at(0.5)),
        order(number="123"),
        order(number=N3, customer="C-2", paid_cents=20400, address="北京市海淀区中关村大街1号",
              updated_at=at(0.5), items=[
                  {"product": "SKU-2", "quantity": 1, "unit_price_cents": 500},
                  {"product": "P-1", "quantity": 1, "unit_price_cents": 19900}]),
    ], ["updated", "unchanged", "created", "updated", "customer_not_found", "unknown_product",
        "state_backwards", "updated", "created", "illegal_transition", "invalid_order_number",
        "updated"]),
    "shipments": ([
        shipment(updated_at=at(1), events=[
            {"external_id": "E-9", **SCAN_IN_TRANSIT},
            {"external_id": "E-2", "at": at(2), "status": "exception"},
            {"external_id": "E-3", "at": at(1), "status": "delivered"}]),
        shipment(external_id="S-2", order=N2, tracking_number="T2",
                 events=[{"external_id": "E-20", "at": at(3), "status": "picked_up"}]),
        shipment(external_id="S-3", order=N2, tracking_number="T2", events=[]),
        shipment(external_id="S-4", order=N2, tracking_number="T4",
                 events=[{"external_id": "E-20", "at": at(2), "status": "in_transit"}]),
        shipment(external_id="S-5", order=N2, tracking_number="T5",
                 events=[{"external_id": "E-50", "at": at(3), "status": "picked_up"},
                         {"external_id": "E-50", "at": at(2), "status": "in_transit"}]),
        shipment(external_id="S-2", order=N2, tracking_number="T2", updated_at=at(2), events=[
            {"at": at(3), "status": "picked_up", "description_en": "Collected"},
            {"external_id": "E-21", "at": at(2), "status": "exception"}]),
        shipment(external_id="S-6", order="2026113099999999", tracking_number="T6"),
        shipment(updated_at=at(3)),
    ], ["updated", "created", "key_taken", "key_taken", "key_taken", "updated",
        "order_not_found", "stale"]),
    "refunds": ([
        refund(state="done", amount_cents=100, updated_at=at(1)),
        refund(external_id="R-2", amount_cents=100),
        refund(external_id="R-3", amount_cents=100),
        refund(external_id="R-4", state="done", amount_cents=39800),
        refund(external_id="R-2", amount_cents=100, state="rejected", rejection_reason="用过了",
               updated_at=at(1)),
        refund(external_id="R-3", amount_cents=100),
        refund(external_id="R-5", order="2026113099999999"),
        refund(amount_cents=100, updated_at=at(4)),
    ], ["updated", "created", "refund_in_progress", "refunded_exceeds_paid", "updated", "created",
        "order_not_found", "stale"]),
}


def _plain(cipher: PiiCipher, blob: bytes | None, field: str) -> str | None:
    return None if blob is None else cipher.decrypt(blob, field=field)


def _held(session: Session, cipher: PiiCipher) -> dict[str, list[Any]]:
    """What the database holds, by the shop's keys (ids differ between two runs)."""
    customers = {c.id: c.external_id for c in session.scalars(select(Customer))}
    products = {p.id: p.external_id for p in session.scalars(select(Product))}
    numbers = {o.id: o.number for o in session.scalars(select(Order))}
    parcels = {s.id: s.external_id for s in session.scalars(select(Shipment))}
    held: dict[str, list[Any]] = {
        "products": [(p.external_id, p.sku, p.price_cents, p.stock, p.source_updated_at)
                     for p in session.scalars(select(Product))],
        "customers": [(c.external_id, c.name, c.phone_lookup, _plain(cipher, c.phone_enc, "phone"),
                       _plain(cipher, c.address_enc, "address"), c.source_updated_at)
                      for c in session.scalars(select(Customer))],
        "orders": [(o.number, customers[o.customer_id], o.state, o.total_cents, o.paid_cents,
                    o.delivered_at, _plain(cipher, o.address_enc, "address"), o.source_updated_at)
                   for o in session.scalars(select(Order))],
        "items": [(numbers[i.order_id], products[i.product_id], i.quantity, i.unit_price_cents)
                  for i in session.scalars(select(OrderItem).order_by(OrderItem.id))],
        "shipments": [(s.external_id, numbers[s.order_id], s.tracking_number, s.delivered_at,
                       s.source_updated_at) for s in session.scalars(select(Shipment))],
        "scans": [(parcels[e.shipment_id], e.external_id, e.at, e.status, e.description_en)
                  for e in session.scalars(select(TrackingEvent))],
        "refunds": [(r.external_id, numbers[r.order_id], r.state, r.amount_cents, r.done_at)
                    for r in session.scalars(select(RefundRequest))],
        "outbox": [(customers[m.customer_id], m.kind, m.text) for m in outbox(session)],
        "notices": [session.scalar(select(func.count()).select_from(CustomerNotice))],
        "waiting": [s.notified_at for s in session.scalars(select(RestockSubscription))],
    }
    return {name: sorted(rows, key=repr) for name, rows in held.items()}


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("kind", list(MIXED))
def test_a_mixed_batch_gives_what_row_by_row_gives(kind, engine, session, cipher, make) -> None:
    _seed(session, cipher, make)
    rows, expected = MIXED[kind]
    ctx = ingest.Context(cipher=cipher, now=NOW)
    attempt = session.begin_nested()
    with _statements(engine) as seen:
        together = ingest.run_batch(session, entity_name=kind, rows=rows, ctx=ctx)
    held_together = _held(session, cipher)
    attempt.rollback()
    attempt = session.begin_nested()
    alone = [ingest.ingest_row(session, ingest.entity(kind), row, index=i, ctx=ctx)
             for i, row in enumerate(rows)]
    held_alone = _held(session, cipher)
    attempt.rollback()

    assert statuses(together) == expected and not together.replayed
    assert together.results == alone
    assert held_together == held_alone
    # no SAVEPOINT per row: one for the rows, and one per notice told
    savepoints = sum(s.startswith("SAVEPOINT") for s in seen)
    assert savepoints <= 1 + len(held_together["outbox"]) < len(rows)


def test_a_record_written_after_the_pre_read_is_found_not_duplicated(session, cipher) -> None:
    run(session, cipher, "products", product())
    run(session, cipher, "customers", customer())
    known = Lookups(session)
    known.preload(ORDER_WITH_ITEMS, [ORDER_NO])  # the batch reads: no such order yet
    assert statuses(run(session, cipher, "orders", order())) == ["created"]  # another request
    report = ingest.run_batch(session, entity_name="orders", known=known,
                              ctx=ingest.Context(cipher=cipher, now=NOW), rows=[
                                  order(number=N3), order(state="shipped", updated_at=at(1))])
    assert statuses(report) == ["created", "updated"] and report.replayed
    assert session.scalar(select(func.count()).select_from(Order)) == 2
    assert session.scalar(select(func.count()).select_from(OrderItem)) == 2


def test_two_batches_racing_create_each_order_once(session_factory, cipher) -> None:
    with session_factory.begin() as s:
        run(s, cipher, "products", product())
        run(s, cipher, "customers", customer())
    rows = [order(number=f"20261130{n:08d}") for n in range(40)]
    barrier = threading.Barrier(2)

    def send() -> list[str]:
        barrier.wait()
        with session_factory.begin() as s:
            return statuses(run(s, cipher, "orders", *rows))

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: send(), range(2)))
    # the second waits for the first (PostgreSQL: on its INSERT, then does its rows again one
    # by one; SQLite: on its BEGIN) and finds every order there
    assert outcomes == [["created"] * 40, ["unchanged"] * 40]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 40
        assert s.scalar(select(func.count()).select_from(OrderItem)) == 40


def _orders(count: int, start: int) -> list[dict[str, Any]]:
    states = ("pending_payment", "paid", "shipped", "delivered", "completed", "cancelled")
    return [order(number=f"20261130{start + n:08d}", state=states[n % 6],
                  paid_cents=0 if n % 6 == 0 else 39800,
                  address=None if n % 2 else "上海市浦东新区世纪大道100号",
                  items=[{"product": "P-1", "quantity": 1, "unit_price_cents": 19900},
                         {"product": "SKU-2", "quantity": 1, "unit_price_cents": 19900}])
            for n in range(count)]


def test_statements_per_batch_do_not_grow_with_its_rows(engine, backend, session, cipher) -> None:
    run(session, cipher, "products", product(), product(external_id="P-2", sku="SKU-2"))
    run(session, cipher, "customers", customer())
    counts = {}
    for size, start in ((10, 0), (200, 1000)):
        rows = _orders(size, start)
        with _statements(engine) as new:
            report = run(session, cipher, "orders", *rows, notify=False)
            assert set(statuses(report)) == {"created"}
        with _statements(engine) as replay:
            assert set(statuses(run(session, cipher, "orders", *rows))) == {"unchanged"}
        counts[size] = len(new), len(replay)
    # row by row this was 7 statements a new order and 6 a replayed one; now a batch costs a
    # few statements whatever its size: the reads, its SAVEPOINT and the INSERTs, one per table
    # on PostgreSQL (SQLAlchemy's SQLite dialect inserts a row at a time: 3 for an order with
    # two items)
    (new_10, replay_10), (new_200, replay_200) = counts[10], counts[200]
    assert replay_200 == replay_10 <= 8, counts
    per_row = 0.05 if backend == "postgresql" else 3
    assert new_200 - new_10 <= 190 * per_row, counts
