"""Delivery from the durable queue to a real local receiver: signed, retried with backoff after
errors, timeouts and refused connections, dead after N attempts, and one delivery per event per
endpoint across a crash mid-request and racing workers (ticketing.desk.webhooks.delivery)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.ticketing.desk.webhooks.receiver import Receiver, running
from ticketing.core.clock import utcnow
from ticketing.core.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent
from ticketing.desk import tickets
from ticketing.desk.webhooks import delivery, endpoints, events, history
from ticketing.desk.webhooks.delivery import DeliveryConfig, HttpSender, RetryPolicy

CONFIG = DeliveryConfig(timeout_seconds=0.4, lease_seconds=5.0, batch=10,
                        retry=RetryPolicy(max_attempts=3, base_seconds=10.0, cap_seconds=60.0))
NO_JITTER = lambda: 0.0  # noqa: E731 - the schedule's lower bound, for exact times


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def queue_events(session, make, count: int = 1) -> list[str]:
    """``count`` tickets created and committed: that many ticket.created events."""
    customer = make.customer()
    for n in range(count):
        tickets.create_ticket(session, customer_id=customer.id, subject=f"问题 {n}",
                              channel="widget", conversation_id=f"w-{customer.id}-{n}")
    session.commit()
    uids = list(session.scalars(select(WebhookEvent.uid).order_by(WebhookEvent.id)))
    session.commit()  # end the read: on SQLite an open transaction holds the write lock
    return uids


def deliveries(session_factory) -> list[WebhookDelivery]:
    with session_factory() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def attempt_log(session_factory) -> list[tuple[int, str, int | None]]:
    with session_factory() as s:
        return [(a.attempt, a.outcome, a.status_code) for a in s.scalars(
            select(WebhookAttempt).order_by(WebhookAttempt.id))]


def run(session_factory, cipher, client, at, config=CONFIG) -> delivery.RunReport:
    return delivery.run_once(session_factory, cipher=cipher, sender=HttpSender(client, config),
                             config=config, now=at, jitter=NO_JITTER)


def test_an_event_is_posted_signed_with_its_id(session, make, session_factory, cipher, client,
                                               add_endpoint) -> None:
    with running(Receiver()) as receiver:
        endpoint, receiver.secret = add_endpoint(url=receiver.url)
        [uid] = queue_events(session, make)
        report = run(session_factory, cipher, client, utcnow())
        assert (report.claimed, report.delivered) == (1, 1)
        [got] = receiver.received
    assert got.valid  # checked with the code docs/webhooks.md gives shops
    assert got.headers["Kefu-Event-Id"] == uid
    assert got.headers["Kefu-Event-Type"] == "ticket.created"
    assert got.headers["Kefu-Delivery-Attempt"] == "1"
    assert got.headers["User-Agent"] == "Kefu-Webhooks/1"
    body = json.loads(got.body)
    assert body["id"] == uid and body["type"] == "ticket.created"
    assert set(body["data"]["ticket"]) >= {"id", "number", "category", "priority", "state"}
    [d] = deliveries(session_factory)
    assert (d.status, d.attempts, d.last_status_code, d.lease_token) == (
        DeliveryStatus.DELIVERED, 1, 200, None)
    assert d.endpoint_id == endpoint.id and d.delivered_at is not None
    assert attempt_log(session_factory) == [(1, "delivered", 200)]
    assert run(session_factory, cipher, client, utcnow()).claimed == 0


def test_a_server_error_is_retried_after_the_backoff(session, make, session_factory, cipher,
                                                     client, add_endpoint) -> None:
    with running(Receiver(script=[500, 200])) as receiver:
        _, receiver.secret = add_endpoint(url=receiver.url)
        queue_events(session, make)
        t0 = utcnow()
        assert run(session_factory, cipher, client, t0).retried == 1
        [d] = deliveries(session_factory)
        assert d.status is DeliveryStatus.FAILED and d.last_error == "HTTP 500"
        assert d.next_attempt_at == t0 + timedelta(seconds=5)  # base 10 s, lower half
        assert run(session_factory, cipher, client, t0 + timedelta(seconds=4.9)).claimed == 0
        assert run(session_factory, cipher, client, t0 + timedelta(seconds=5)).delivered == 1
        first, second = receiver.received
    assert first.valid and second.valid  # each attempt is signed afresh
    assert [first.headers["Kefu-Delivery-Attempt"], second.headers["Kefu-Delivery-Attempt"]] \
        == ["1", "2"]
    assert first.headers["Kefu-Event-Id"] == second.headers["Kefu-Event-Id"]
    assert attempt_log(session_factory) == [(1, "retry", 500), (2, "delivered", 200)]


def test_a_timeout_and_a_refused_connection_are_retried(session, make, session_factory, cipher,
                                                        client, add_endpoint) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks"
    with running(Receiver(script=[("sleep", 1.2)])) as receiver:
        slow, _ = add_endpoint(url=receiver.url)
        refused, _ = add_endpoint(url=closed)
        queue_events(session, make)
        report = run(session_factory, cipher, client, utcnow())
    assert (report.claimed, report.retried) == (2, 2)
    errors = {d.endpoint_id: d.last_error for d in deliveries(session_factory)}
    assert errors[slow.id].startswith("timeout after 0.4s")
    assert "ConnectError" in errors[refused.id]
    assert all(d.status is DeliveryStatus.FAILED for d in deliveries(session_factory))
    assert sorted(attempt_log(session_factory)) == [(1, "retry", None)] * 2


def test_a_batch_is_sent_side_by_side(client) -> None:
    """A batch costs one timeout, not one per delivery: a dead endpoint cannot starve the rest."""
    config = DeliveryConfig(timeout_seconds=0.3, lease_seconds=5.0)
    with running(Receiver(script=[("sleep", 1.0)] * 3)) as receiver:
        items = [delivery.Claimed(delivery_id=n, token="t", attempt=1, url=receiver.url,
                                  secret="whsec_x", event_uid=f"e{n}", event_type="ticket.created",
                                  body=b"{}") for n in range(3)]
        started = time.monotonic()
        results = delivery.send(items, HttpSender(client, config))
        elapsed = time.monotonic() - started
    assert [r.error is not None and r.error.startswith("timeout") for r in results] == [True] * 3
    assert elapsed < 0.75  # one after another would take at least 0.9 s


def test_backoff_schedule_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy()  # the defaults docs/webhooks.md tabulates
    full = [policy.delay(n, 1.0).total_seconds() for n in range(1, 12)]
    assert full == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600]
    assert [policy.delay(n, 0.0).total_seconds() for n in (1, 2, 11)] == [15, 30, 10800]
    assert policy.delay(3, 0.5).total_seconds() == 90  # between half and all of 120
    assert policy.max_attempts == 12
    assert policy.delay(40, 1.0).total_seconds() == 21600  # capped, never overflowing


def test_dead_after_max_attempts_and_redelivered_by_an_admin(
        session, make, session_factory, cipher, client, add_endpoint, admin) -> None:
    with running(Receiver(script=[500, 503, 502])) as receiver:
        _, receiver.secret = add_endpoint(url=receiver.url)
        queue_events(session, make)
        at = utcnow()
        for _ in range(3):
            run(session_factory, cipher, client, at)
            at = deliveries(session_factory)[0].next_attempt_at
        [d] = deliveries(session_factory)
        assert (d.status, d.attempts, d.last_error) == (DeliveryStatus.DEAD, 3, "HTTP 502")
        assert run(session_factory, cipher, client, at + timedelta(days=30)).claimed == 0
        assert attempt_log(session_factory) == [(1, "retry", 500), (2, "retry", 503),
                                                (3, "dead", 502)]
        with session_factory.begin() as s:
            history.redeliver(s, delivery_id=d.id, by_agent_id=admin.id)
        assert run(session_factory, cipher, client, utcnow()).delivered == 1
        assert len(receiver.received) == 4


def test_a_crash_mid_delivery_is_redelivered_and_counted_once(
        session, make, session_factory, cipher, client, add_endpoint) -> None:
    with running(Receiver()) as receiver:
        _, receiver.secret = add_endpoint(url=receiver.url)
        [uid] = queue_events(session, make)
        t0 = utcnow()
        sender = HttpSender(client, CONFIG)
        # the first worker claims and sends, the shop accepts, and the worker dies before
        # it can record anything
        [crashed] = delivery.claim(session_factory, cipher=cipher, now=t0, config=CONFIG)
        [result] = delivery.send([crashed], sender)
        assert result.ok
        # while its lease lasts nobody else takes it ...
        assert run(session_factory, cipher, client, t0 + timedelta(seconds=4)).claimed == 0
        # ... then a restarted worker does, and sends it again with the same event id
        report = run(session_factory, cipher, client, t0 + timedelta(seconds=5))
        assert (report.claimed, report.delivered) == (1, 1)
        assert receiver.processed == Counter({uid: 2})  # two receipts, one event to process
        assert all(r.valid for r in receiver.received)
    [d] = deliveries(session_factory)
    assert (d.status, d.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert attempt_log(session_factory) == [(1, "lost", None), (2, "delivered", 200)]
    # the dead worker's result, should it still arrive, changes nothing
    assert delivery.record(session_factory, crashed, result, now=utcnow(), config=CONFIG) \
        == "late"
    [after] = deliveries(session_factory)
    assert (after.status, after.delivered_at) == (DeliveryStatus.DELIVERED, d.delivered_at)
    assert [o for _, o, _ in attempt_log(session_factory)].count("delivered") == 1


def test_a_crash_on_the_last_attempt_makes_it_dead(session, make, session_factory, cipher,
                                                   add_endpoint) -> None:
    config = DeliveryConfig(timeout_seconds=0.4, lease_seconds=5.0,
                            retry=RetryPolicy(max_attempts=1))
    add_endpoint(url="https://shop.example/never-called")
    queue_events(session, make)
    t0 = utcnow()
    assert len(delivery.claim(session_factory, cipher=cipher, now=t0, config=config)) == 1
    assert delivery.claim(session_factory, cipher=cipher, now=t0 + timedelta(seconds=5),
                          config=config) == []
    [d] = deliveries(session_factory)
    assert (d.status, d.attempts) == (DeliveryStatus.DEAD, 1)
    assert attempt_log(session_factory) == [(1, "lost", None)]


def test_a_disabled_endpoint_waits_and_resumes(session, make, session_factory, cipher, client,
                                              add_endpoint, admin) -> None:
    with running(Receiver()) as receiver:
        endpoint, receiver.secret = add_endpoint(url=receiver.url)
        queue_events(session, make)
        endpoints.set_active(session, endpoint_id=endpoint.id, active=False,
                             by_agent_id=admin.id)
        session.commit()
        assert run(session_factory, cipher, client, utcnow()).claimed == 0
        endpoints.set_active(session, endpoint_id=endpoint.id, active=True,
                             by_agent_id=admin.id)
        session.commit()
        assert run(session_factory, cipher, client, utcnow()).delivered == 1
        assert len(receiver.received) == 1


@pytest.mark.postgres_only
def test_racing_workers_deliver_each_event_to_each_endpoint_once(
        pg_engine, session, make, session_factory, cipher, add_endpoint) -> None:
    workers, batch = 4, 5
    config = DeliveryConfig(timeout_seconds=5.0, lease_seconds=30.0, batch=batch)
    with running(Receiver()) as receiver:
        add_endpoint(url=receiver.url)
        add_endpoint(url=receiver.url.replace("/kefu-hooks", "/second"))
        uids = queue_events(session, make, count=30)
        barrier = threading.Barrier(workers)
        reports: list[delivery.RunReport] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with httpx.Client() as own:
                    sender = HttpSender(own, config)
                    barrier.wait()
                    while True:
                        report = delivery.run_once(session_factory, cipher=cipher,
                                                   sender=sender, config=config)
                        reports.append(report)
                        if report.claimed == 0:
                            return
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        paths = Counter((r.headers["Kefu-Event-Id"], r.path) for r in receiver.received)
        got = Counter(r.headers["Kefu-Event-Id"] for r in receiver.received)
    failed = [(d.id, d.status, d.last_error) for d in deliveries(session_factory)
              if d.status is not DeliveryStatus.DELIVERED]
    assert failed == []
    assert got == Counter({uid: 2 for uid in uids})  # each event once to each endpoint
    assert max(paths.values()) == 1
    assert sum(r.claimed for r in reports) == sum(r.delivered for r in reports) == 60
    assert sum(1 for r in reports if r.claimed) > workers  # they really took turns
    assert {(d.status, d.attempts) for d in deliveries(session_factory)} == {
        (DeliveryStatus.DELIVERED, 1)}


def test_envelope_is_the_signed_body(session, make, add_endpoint) -> None:
    add_endpoint()
    queue_events(session, make)
    row = session.scalars(select(WebhookEvent)).one()
    body = delivery.body_of(row)
    assert json.loads(body) == events.envelope(row)
    assert body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"),
                              sort_keys=True).encode()
