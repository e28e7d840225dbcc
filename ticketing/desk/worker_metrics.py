"""Prometheus metrics of the SLA worker, in a registry of its own (like the gateway's).

What an operator watches: timers fired by action, how late they fire (due → fired: the
promise "SLA timers never slip" in one histogram), handler failures and timers lost to
another worker, where "what is due" came from (the Redis index or the database fallback),
tickets dispatched, failed rounds, and when the last round finished (a stuck worker shows as
an old timestamp). Served by :mod:`ticketing.core.metrics_listener` when a port is set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ticketing.core.metrics_listener import counting

LAG_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 3600)


class _Dispatched(Protocol):
    dispatched: int
    failed: int


class Round(Protocol):
    """What :class:`ticketing.desk.worker.RunReport` tells of one pass."""

    fired: Mapping[str, int]
    lags: Sequence[tuple[str, float]]
    failed: int
    lost: int
    source: str
    dispatch: _Dispatched


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fired = Counter("kefu_worker_timers_fired_total", "Timers fired, by action",
                             ["action"], registry=self.registry)
        self.lag = Histogram("kefu_worker_timer_lag_seconds",
                             "From a timer falling due to its firing, by action",
                             ["action"], registry=self.registry, buckets=LAG_BUCKETS)
        self.failed = Counter("kefu_worker_timer_failures_total",
                              "Timers whose handler raised (rolled back, retried next round)",
                              registry=self.registry)
        self.lost = Counter("kefu_worker_timers_lost_total",
                            "Due timers another worker (or a change) fired first",
                            registry=self.registry)
        self.passes = Counter("kefu_worker_passes_total",
                              "Passes over due timers, by where the due list came from "
                              "(redis, database: the index's fallback)",
                              ["source"], registry=self.registry)
        self.dispatched = Counter("kefu_worker_dispatched_total",
                                  "Tickets assigned by the worker (outcome dispatched, failed)",
                                  ["outcome"], registry=self.registry)
        self.errors = Counter("kefu_worker_loop_errors_total",
                              "Rounds that failed as a whole (e.g. the database restarting)",
                              registry=self.registry)
        self.last_round = Gauge("kefu_worker_last_round_timestamp_seconds",
                                "Unix time the last round finished without error",
                                registry=self.registry)
        for outcome in ("dispatched", "failed"):
            self.dispatched.labels(outcome)

    def observe(self, report: Round) -> None:
        """One pass of :func:`ticketing.desk.worker.run_once`."""
        with counting("worker"):
            for action, count in report.fired.items():
                self.fired.labels(action).inc(count)
            for action, seconds in report.lags:
                self.lag.labels(action).observe(max(seconds, 0.0))
            self.failed.inc(report.failed)
            self.lost.inc(report.lost)
            self.passes.labels(report.source or "unknown").inc()

    def round_done(self, report: Round) -> None:
        """A round ended well: its dispatching counted, the timestamp moved on."""
        with counting("worker"):
            self.dispatched.labels("dispatched").inc(report.dispatch.dispatched)
            self.dispatched.labels("failed").inc(report.dispatch.failed)
            self.last_round.set(time.time())

    def round_failed(self) -> None:
        with counting("worker"):
            self.errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
