"""The webhook sender's metrics (ticketing.desk.webhooks.metrics): attempts by outcome,
retries, the endpoint's answer time, failed rounds and the last round, served over HTTP by
the listener a port turns on."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx

from tests.ticketing.desk.webhooks.receiver import Receiver, running
from tests.ticketing.desk.webhooks.test_delivery import CONFIG, NO_JITTER, queue_events
from tests.ticketing.metrics_process import samples, scrape_process
from ticketing.core.clock import utcnow
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.metrics_listener import ListenerConfig, start_listener
from ticketing.desk.webhooks import delivery
from ticketing.desk.webhooks.delivery import HttpSender
from ticketing.desk.webhooks.metrics import WebhookMetrics


def test_attempts_are_counted_by_outcome_and_served(session, make, session_factory, cipher,
                                                     add_endpoint) -> None:
    metrics = WebhookMetrics()
    with running(Receiver(script=[500, 200])) as receiver, httpx.Client() as client:
        _, receiver.secret = add_endpoint(url=receiver.url)
        queue_events(session, make)
        t0 = utcnow()
        for at in (t0, t0 + timedelta(seconds=5)):  # a 500, then the retry delivered
            delivery.run_once(session_factory, cipher=cipher, sender=HttpSender(client, CONFIG),
                              config=CONFIG, now=at, jitter=NO_JITTER, metrics=metrics)
    listener = start_listener(metrics.registry, ListenerConfig(0), process="webhooks")
    assert listener is not None
    try:
        page = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=5).text
    finally:
        listener.close()
    got = samples(page)
    assert got[("kefu_webhook_attempts_total", (("outcome", "retry"),))] == 1
    assert got[("kefu_webhook_attempts_total", (("outcome", "delivered"),))] == 1
    assert got[("kefu_webhook_attempts_total", (("outcome", "dead"),))] == 0
    assert got[("kefu_webhook_retries_total", ())] == 1
    assert got[("kefu_webhook_attempt_seconds_count", ())] == 2


def test_failed_rounds_count_as_loop_errors() -> None:
    broken = make_session_factory(make_engine("sqlite://"))  # no tables: every round fails
    failures = threading.Semaphore(0)

    class Watching(WebhookMetrics):
        def round_failed(self) -> None:
            super().round_failed()
            failures.release()

    metrics = Watching()
    loop = delivery.DeliveryWorker(broken, cipher=None,  # type: ignore[arg-type]
                                   sender=lambda item: None,  # type: ignore[arg-type,return-value]
                                   interval_seconds=0.001, metrics=metrics)
    runner = threading.Thread(target=loop.run)
    runner.start()
    for _ in range(2):
        assert failures.acquire(timeout=10)
    loop.stop()
    runner.join(10)
    assert not runner.is_alive()
    got = samples(metrics.render().decode())
    assert got[("kefu_webhook_loop_errors_total", ())] >= 2
    assert got[("kefu_webhook_last_round_timestamp_seconds", ())] == 0


def test_the_sender_process_serves_its_metrics_on_the_configured_port(tmp_path) -> None:
    page = scrape_process("ticketing.desk.webhooks", tmp_path)
    for name in ("kefu_webhook_attempts_total", "kefu_webhook_retries_total",
                 "kefu_webhook_attempt_seconds", "kefu_webhook_last_round_timestamp_seconds"):
        assert f"# TYPE {name}" in page
