"""Many simultaneous refund requests for one order: exactly one refund, never two."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ticketing.shop.refunds import flow as refunds
from ticketing.core.clock import utcnow
from ticketing.core.errors import Conflict, KefuError, RefundInProgress
from ticketing.core.models import Order, OrderState, RefundMethod, RefundRequest, RefundState


@pytest.fixture(autouse=True)
def _give_connections_back(engine: Engine) -> Iterator[None]:
    """Fifty threads leave fifty pooled connections; close them for whoever shares the server."""
    yield
    engine.dispose()


def _race(
    session_factory: sessionmaker[Session], order: Order, *, threads: int,
    key: Callable[[int], str],
) -> list[object]:
    """Fire ``threads`` requests at once, each in its own unit of work; collect outcomes."""
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def one(i: int) -> None:
        barrier.wait()
        try:
            with session_factory.begin() as s:
                refund = refunds.request_refund(
                    s, customer_id=order.customer_id, order_number=order.number,
                    reason="changed_mind", amount_cents=None, method=RefundMethod.ORIGINAL,
                    idempotency_key=key(i),
                )
                results[i] = refund.id
        except KefuError as exc:
            results[i] = exc
        except Exception as exc:  # noqa: BLE001 - an unexpected error must fail the test
            results[i] = exc

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers)
    return results


def _check(session: Session, order: Order, results: list[object], *, same_key: bool,
           refunded: int, state: RefundState) -> None:
    rows = session.scalars(select(RefundRequest).where(RefundRequest.order_id == order.id)).all()
    assert len(rows) == 1 and rows[0].state is state
    ids = [r for r in results if isinstance(r, int)]
    errors = [r for r in results if not isinstance(r, int)]
    assert all(isinstance(e, RefundInProgress) for e in errors), errors
    assert set(ids) == {rows[0].id}
    if same_key:
        assert not errors  # every caller gets the one request back
    else:
        assert len(ids) == 1
    session.expire_all()
    assert session.get(Order, order.id).refunded_cents == refunded


@pytest.mark.parametrize("same_key", [False, True], ids=["distinct-keys", "same-key"])
def test_fifty_cancellations_on_postgres_refund_once(pg_engine, session_factory, session, make,
                                                     same_key) -> None:
    order = make.order(customer=make.customer(), state=OrderState.PAID)
    session.commit()
    results = _race(session_factory, order, threads=50,
                    key=(lambda i: "tap") if same_key else (lambda i: f"tap-{i}"))
    _check(session, order, results, same_key=same_key, refunded=order.paid_cents,
           state=RefundState.DONE)
    assert session.get(Order, order.id).state is OrderState.CANCELLED


def test_fifty_returns_on_postgres_leave_one_under_review(pg_engine, session_factory, session,
                                                          make) -> None:
    order = make.order(customer=make.customer(), state=OrderState.DELIVERED)
    session.commit()
    results = _race(session_factory, order, threads=50, key=lambda i: f"ret-{i}")
    _check(session, order, results, same_key=False, refunded=0, state=RefundState.UNDER_REVIEW)


@pytest.mark.parametrize("same_key", [False, True], ids=["distinct-keys", "same-key"])
def test_threaded_cancellations_on_every_backend(session_factory, session, make,
                                                 same_key) -> None:
    order = make.order(customer=make.customer(), state=OrderState.PAID)
    session.commit()
    results = _race(session_factory, order, threads=8,
                    key=(lambda i: "tap") if same_key else (lambda i: f"tap-{i}"))
    _check(session, order, results, same_key=same_key, refunded=order.paid_cents,
           state=RefundState.DONE)


def _wait_until_blocked(session: Session, timeout: float = 10.0) -> None:
    """Until some other backend waits on a lock (our writer is stuck behind the open insert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"))
        session.rollback()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the request never blocked on the unique index")


def test_unique_index_backstop_keeps_the_transaction_usable(pg_engine, session_factory,
                                                            session, make) -> None:
    """A writer the order lock cannot see (same key, other order) loses on the unique index:
    the savepoint absorbs the IntegrityError, the caller gets a typed error and can go on."""
    customer = make.customer()
    first, second = (make.order(customer=customer, state=OrderState.DELIVERED) for _ in "ab")
    session.commit()
    outcome: dict[str, object] = {}

    def late_writer() -> None:
        with session_factory.begin() as s:
            try:
                refunds.request_refund(
                    s, customer_id=customer.id, order_number=second.number, reason="quality",
                    amount_cents=None, method="original", idempotency_key="shared")
            except Conflict as exc:
                outcome["error"] = exc
            outcome["after"] = refunds.request_refund(
                s, customer_id=customer.id, order_number=second.number, reason="quality",
                amount_cents=None, method="original", idempotency_key="fresh").id

    with session_factory() as holder:
        with holder.begin():
            refunds.request_refund(
                holder, customer_id=customer.id, order_number=first.number,
                reason="quality", amount_cents=None, method="original",
                idempotency_key="shared", now=utcnow())
            thread = threading.Thread(target=late_writer)
            thread.start()
            _wait_until_blocked(session)
        thread.join(30)
    assert not thread.is_alive()
    assert type(outcome["error"]) is Conflict
    keys = session.execute(select(RefundRequest.order_id, RefundRequest.idempotency_key)
                           .order_by(RefundRequest.id)).all()
    assert keys == [(first.id, "shared"), (second.id, "fresh")]
    assert session.scalar(select(func.count()).select_from(RefundRequest)) == 2
