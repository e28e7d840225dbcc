"""Periodic jobs of the reports layer: each round brings the dashboard's day cells up to
date (:mod:`ticketing.reports.cell_builds`) and evaluates managers' alerts.

A process of its own (``python -m ticketing.reports.jobs``, ``--once`` for a single round)
rather than a step of the desk worker, because the worker lives in the desk layer and must
not import reports. Each round is one transaction; any number of these processes may run
(:func:`ticketing.reports.alerts.evaluate` opens and notifies each alert once).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.errors import ConfigurationError
from ticketing.reports import alerts, cell_builds
from ticketing.reports.job_metrics import AlertJobMetrics

log = logging.getLogger("ticketing.reports.jobs")

DEFAULT_EVERY_MINUTES = 15.0
DEFAULT_CELLS_EVERY_MINUTES = 1.0


@dataclass(frozen=True)
class AlertRun:
    opened: int
    refreshed: int
    resolved: int


def run_alerts(session_factory: sessionmaker[Session], *, now: datetime | None = None,
               config: alerts.AlertConfig = alerts.AlertConfig()) -> AlertRun:
    """Evaluate every alert in one transaction. A failure is logged and raised: nothing of
    the round is saved, and the caller decides whether to try again."""
    now = now or utcnow()
    try:
        with session_factory.begin() as session:
            done = alerts.evaluate_in_detail(session, now=now, config=config)
    except Exception:
        log.exception("alert evaluation at %s failed; nothing saved", now.isoformat())
        raise
    run = AlertRun(len(done.opened), len(done.refreshed), len(done.resolved))
    if run.opened or run.resolved:
        log.info("alerts: %d opened, %d refreshed, %d resolved", run.opened, run.refreshed,
                 run.resolved)
    return run


def build_cells(session_factory: sessionmaker[Session], *, now: datetime | None = None
                ) -> cell_builds.CellBuild | None:
    """The day cells of every changed or new day built. A failure is logged and the round goes
    on: until the next round the dashboard reads those days from the facts."""
    try:
        return cell_builds.build(session_factory, now=now)
    except Exception:
        log.exception("building the dashboard's day cells failed; changed days are read "
                      "from the facts until the next round")
        return None


class AlertJob:
    """The loop: a round now, then every ``every_minutes``; a failed round (the database
    restarting) is retried at the next one; SIGTERM stops it between rounds. The day cells
    are built every ``cells_every_minutes`` (default one): a changed day is read from the
    facts until its next build, so the fewer days wait, the lighter the dashboard."""

    def __init__(self, session_factory: sessionmaker[Session], *, every_minutes: float,
                 clock: Callable[[], datetime] = utcnow,
                 config: alerts.AlertConfig = alerts.AlertConfig(),
                 metrics: AlertJobMetrics | None = None,
                 cells_every_minutes: float = DEFAULT_CELLS_EVERY_MINUTES) -> None:
        if every_minutes <= 0 or cells_every_minutes <= 0:
            raise ConfigurationError("the job's intervals must be positive numbers of minutes")
        self.session_factory = session_factory
        self.every_seconds = every_minutes * 60.0
        self.cells_every_seconds = min(cells_every_minutes, every_minutes) * 60.0
        self.clock = clock
        self.config = config
        self.metrics = metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        log.info("alert job started (every %g min; day cells every %g min)",
                 self.every_seconds / 60.0, self.cells_every_seconds / 60.0)
        alerts_due = time.monotonic()
        while not self.stopping.is_set():
            build_cells(self.session_factory, now=self.clock())
            if time.monotonic() >= alerts_due:
                alerts_due = time.monotonic() + self.every_seconds
                self._alerts_round()
            self.stopping.wait(min(self.cells_every_seconds,
                                   max(0.0, alerts_due - time.monotonic())))
        log.info("alert job stopped")

    def _alerts_round(self) -> None:
        started = time.monotonic()
        try:
            run = run_alerts(self.session_factory, now=self.clock(), config=self.config)
        except Exception:  # already logged with its traceback by run_alerts
            log.warning("alert round failed; next try in %g min", self.every_seconds / 60.0)
            if self.metrics is not None:
                self.metrics.round_failed(seconds=time.monotonic() - started)
        else:
            if self.metrics is not None:
                self.metrics.round_done(opened=run.opened, resolved=run.resolved,
                                        seconds=time.monotonic() - started)

    def stop(self, *_args: object) -> None:
        self.stopping.set()


def main(argv: Sequence[str] | None = None) -> int:
    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.metrics_listener import listener_config, start_listener
    from ticketing.core.settings import load_settings
    from ticketing.desk import live_events

    parser = argparse.ArgumentParser(prog="python -m ticketing.reports.jobs",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_MINUTES, metavar="MINUTES",
                        help=f"minutes between rounds (default {DEFAULT_EVERY_MINUTES:g})")
    parser.add_argument("--cells-every", type=float, default=DEFAULT_CELLS_EVERY_MINUTES,
                        metavar="MINUTES", help="minutes between builds of the dashboard's day "
                        f"cells (default {DEFAULT_CELLS_EVERY_MINUTES:g})")
    args = parser.parse_args(argv)
    if not args.every > 0 or not args.cells_every > 0:
        parser.error("--every and --cells-every must be positive numbers of minutes")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    settings = load_settings()
    session_factory = make_session_factory(make_engine(settings.database_url),
                                           schedule=settings.schedule)
    if settings.redis_url:
        import redis

        # managers' notifications wake their open desk pages at once
        live_events.install(session_factory, redis.Redis.from_url(settings.redis_url,
                                                                  decode_responses=True))
    if args.once:
        build_cells(session_factory)
        run = run_alerts(session_factory)
        log.info("one round: %d opened, %d refreshed, %d resolved", run.opened, run.refreshed,
                 run.resolved)
        return 0
    metrics = AlertJobMetrics()
    start_listener(metrics.registry, listener_config(os.environ), process="alerts")
    job = AlertJob(session_factory, every_minutes=args.every, metrics=metrics,
                   cells_every_minutes=args.cells_every)
    signal.signal(signal.SIGTERM, job.stop)
    signal.signal(signal.SIGINT, job.stop)
    job.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
