"""Prometheus metrics of the alerts job, in a registry of its own (like the gateway's).

What an operator watches: rounds by outcome (``ok``, ``failed``: nothing of the round was
saved), alerts opened and resolved, how long an evaluation takes (it reads the reports'
facts, so it grows with the shop), and when the last good round finished (the job runs every
15 minutes: an older timestamp means it is stuck or failing). Served by
:mod:`ticketing.core.metrics_listener` when a port is set.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ticketing.core.metrics_listener import counting


class AlertJobMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("kefu_alerts_runs_total", "Alert rounds by outcome (ok, failed)",
                            ["outcome"], registry=self.registry)
        self.raised = Counter("kefu_alerts_raised_total", "Alerts opened (raised)",
                              registry=self.registry)
        self.resolved = Counter("kefu_alerts_resolved_total", "Alerts resolved",
                                registry=self.registry)
        self.duration = Histogram("kefu_alerts_run_seconds", "How long one round took",
                                  registry=self.registry,
                                  buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.last_run = Gauge("kefu_alerts_last_run_timestamp_seconds",
                              "Unix time the last round finished without error",
                              registry=self.registry)
        for outcome in ("ok", "failed"):
            self.runs.labels(outcome)

    def round_done(self, *, opened: int, resolved: int, seconds: float) -> None:
        with counting("alerts"):
            self.runs.labels("ok").inc()
            self.raised.inc(opened)
            self.resolved.inc(resolved)
            self.duration.observe(seconds)
            self.last_run.set(time.time())

    def round_failed(self, *, seconds: float) -> None:
        with counting("alerts"):
            self.runs.labels("failed").inc()
            self.duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
