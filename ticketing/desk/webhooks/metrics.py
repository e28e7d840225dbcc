"""Prometheus metrics of the webhook sender, in a registry of its own (like the gateway's).

What an operator watches: delivery attempts by outcome (``delivered``; ``retry``: failed and
scheduled again; ``dead``: failed with no attempts left; ``late``: the result came back after
the lease ran out), how many attempts were retries, how long the shop's endpoints take to
answer, failed rounds, and when the last round finished. Served by
:mod:`ticketing.core.metrics_listener` when a port is set.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ticketing.core.metrics_listener import counting

OUTCOMES = ("delivered", "retry", "dead", "late")


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter("kefu_webhook_attempts_total",
                                "Delivery attempts by outcome (delivered, retry, dead, late)",
                                ["outcome"], registry=self.registry)
        self.retries = Counter("kefu_webhook_retries_total",
                               "Attempts that were a retry (a delivery's second or later)",
                               registry=self.registry)
        self.duration = Histogram("kefu_webhook_attempt_seconds",
                                  "How long the shop's endpoint took to answer (or fail)",
                                  registry=self.registry,
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.errors = Counter("kefu_webhook_loop_errors_total",
                              "Rounds that failed as a whole (e.g. the database restarting)",
                              registry=self.registry)
        self.last_round = Gauge("kefu_webhook_last_round_timestamp_seconds",
                                "Unix time the last round finished without error",
                                registry=self.registry)
        for outcome in OUTCOMES:
            self.attempts.labels(outcome)

    def attempted(self, *, attempt: int, outcome: str, duration_ms: int) -> None:
        """One delivery attempt recorded with ``outcome`` (its ``attempt`` number, 1-based)."""
        with counting("webhooks"):
            self.attempts.labels(outcome).inc()
            if attempt > 1:
                self.retries.inc()
            self.duration.observe(max(duration_ms, 0) / 1000.0)

    def round_done(self) -> None:
        with counting("webhooks"):
            self.last_round.set(time.time())

    def round_failed(self) -> None:
        with counting("webhooks"):
            self.errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
