"""The worker: fires due SLA timers (warnings, breaches), follow-ups and survey reminders,
and dispatches tickets nobody claimed in time (:mod:`ticketing.desk.dispatch`).

Each timer is fired in its own transaction: :func:`ticketing.desk.sla.fire` wins the timer by
compare-and-set and the handler's side effects (notification, escalation, outbox message)
commit with it or not at all. Any number of workers may run; each timer fires once.

Run it with ``python -m ticketing.desk.worker`` (``--once`` for a single round).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.conversations import wakeups
from ticketing.desk import csat, dispatch, escalation, followup, live_events, sla, timer_index
from ticketing.core.clock import utcnow
from ticketing.core.errors import ConfigurationError
from ticketing.core.models import SlaTimer, Ticket, TimerStatus
from ticketing.desk.worker_metrics import WorkerMetrics

log = logging.getLogger("ticketing.desk.worker")

RECONCILE_EVERY_SECONDS = 300.0


class Handler(Protocol):
    def __call__(self, session: Session, *, firing: sla.Firing, ticket: Ticket, now: datetime) -> None: ...


def handle_warning(session: Session, *, firing: sla.Firing, ticket: Ticket, now: datetime) -> None:
    escalation.warn_of_deadline(session, ticket=ticket, timer=firing.kind,
                                deadline_at=firing.deadline_at, now=now)


def handle_breach(session: Session, *, firing: sla.Firing, ticket: Ticket, now: datetime) -> None:
    escalation.escalate_on_breach(session, ticket=ticket, timer=firing.kind,
                                  deadline_at=firing.deadline_at, now=now)


def handle_followup(session: Session, *, firing: sla.Firing, ticket: Ticket, now: datetime) -> None:
    followup.send_followup(session, ticket=ticket, now=now)


def handle_csat_reminder(session: Session, *, firing: sla.Firing, ticket: Ticket, now: datetime) -> None:
    csat.send_reminder(session, ticket=ticket, now=now)


DEFAULT_HANDLERS: Mapping[sla.Action, Handler] = {
    sla.Action.WARNING: handle_warning,
    sla.Action.BREACH: handle_breach,
    sla.Action.FOLLOWUP: handle_followup,
    sla.Action.CSAT_REMINDER: handle_csat_reminder,
}


@dataclass
class RunReport:
    candidates: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # confirmed due, but another worker (or a change) got there first
    failed: int = 0  # handler raised: rolled back, retried next round
    source: str = ""
    dispatch: dispatch.DispatchReport = field(default_factory=dispatch.DispatchReport)
    lags: list[tuple[str, float]] = field(default_factory=list)  # metrics: (action, due → fired s)

    @property
    def total_fired(self) -> int:
        return sum(self.fired.values())


def _confirm(session_factory: sessionmaker[Session], ids: Sequence[int], now: datetime
             ) -> tuple[dict[int, datetime], list[tuple[int, Any]]]:
    """Split candidates into really due ones (id → when it fell due) and stale ones (with
    their true fire_at or None)."""
    if not ids:
        return {}, []
    with session_factory() as session:
        rows = session.execute(
            select(SlaTimer.id, SlaTimer.status, SlaTimer.fire_at).where(SlaTimer.id.in_(list(ids)))
        ).all()
    state = {r.id: r for r in rows}
    due: dict[int, datetime] = {}
    stale: list[tuple[int, Any]] = []
    for timer_id in ids:
        row = state.get(timer_id)
        if row is not None and row.status is TimerStatus.ACTIVE and row.fire_at is not None:
            if row.fire_at <= now:
                due[timer_id] = row.fire_at
            else:
                stale.append((timer_id, row.fire_at))
        else:
            stale.append((timer_id, None))
    return due, stale


def run_once(session_factory: sessionmaker[Session], *, due_source: timer_index.DueSource,
             handlers: Mapping[sla.Action, Handler] = DEFAULT_HANDLERS, now: datetime | None = None,
             limit: int = 500, fallback: timer_index.DueSource | None = None) -> RunReport:
    """Fire what is due now, one transaction per timer; returns what happened.

    If ``due_source`` fails (Redis down), ``fallback`` (default: the indexed database query)
    answers instead, so an outage slows nothing but the index.
    """
    missing = [a.value for a in sla.Action if a not in handlers]
    if missing:
        raise ConfigurationError(f"worker has no handler for {', '.join(missing)}")
    now = now or utcnow()
    report = RunReport(source=due_source.name)
    try:
        ids = due_source.due(now=now, limit=limit)
    except timer_index.INDEX_ERRORS as exc:
        log.warning("due source %s failed (%s); asking the database", due_source.name, exc)
        due_source = fallback or timer_index.DatabaseDueSource(session_factory)
        report.source = due_source.name
        ids = due_source.due(now=now, limit=limit)
    report.candidates = len(ids)
    due, stale = _confirm(session_factory, ids, now)
    if stale:
        try:
            due_source.repair(stale, now=now)
        except timer_index.INDEX_ERRORS as exc:
            log.warning("could not repair %d stale index entries: %s", len(stale), exc)
    for timer_id in due:
        try:
            with session_factory.begin() as session:
                firing = sla.fire(session, timer_id=timer_id, now=now)
                if firing is None:
                    report.lost += 1
                    continue
                ticket = session.get(Ticket, firing.ticket_id)
                handlers[firing.action](session, firing=firing, ticket=ticket, now=now)
        except Exception:  # one bad timer must not stop the others; it stays due
            report.failed += 1
            log.exception("firing timer %s failed; it will be retried", timer_id)
            continue
        report.fired[firing.action.value] = report.fired.get(firing.action.value, 0) + 1
        report.lags.append((firing.action.value, (now - due[timer_id]).total_seconds()))
    return report


class Worker:
    """The loop: keep the index built, fire what is due, dispatch unclaimed tickets, reconcile
    now and then, stop on SIGTERM. ``auto_assign_after`` None leaves dispatch to people."""

    def __init__(self, session_factory: sessionmaker[Session], *, index: timer_index.RedisTimerIndex | None,
                 handlers: Mapping[sla.Action, Handler] = DEFAULT_HANDLERS, interval: float = 5.0,
                 batch: int = 500, reconcile_every: float = RECONCILE_EVERY_SECONDS,
                 clock: Callable[[], datetime] = utcnow,
                 auto_assign_after: timedelta | None = dispatch.DEFAULT_AFTER,
                 metrics: WorkerMetrics | None = None) -> None:
        self.session_factory = session_factory
        self.index = index
        self.database = timer_index.DatabaseDueSource(session_factory)
        self.handlers = handlers
        self.interval = interval
        self.batch = batch
        self.reconcile_every = reconcile_every
        self.clock = clock
        self.auto_assign_after = auto_assign_after
        self.metrics = metrics
        self.stopping = threading.Event()
        self._last_reconcile = float("-inf")

    def _ensure_index(self) -> None:
        if self.index is None:
            return
        try:
            lost = not self.index.is_built()
            if lost or time.monotonic() - self._last_reconcile >= self.reconcile_every:
                if lost:
                    log.warning("timer index %s missing or lost: rebuilding", self.index.key)
                self.index.rebuild(self.session_factory)
                self._last_reconcile = time.monotonic()
        except timer_index.INDEX_ERRORS as exc:
            log.warning("timer index unavailable (%s): using the database", exc)

    def step(self) -> RunReport:
        self._ensure_index()
        source = self.index if self.index is not None else self.database
        while True:  # drain a backlog in batches before sleeping
            report = run_once(self.session_factory, due_source=source, handlers=self.handlers,
                              now=self.clock(), limit=self.batch, fallback=self.database)
            if self.metrics is not None:
                self.metrics.observe(report)
            if report.total_fired:
                log.info("fired %s from %s (%d lost to other workers, %d failed)",
                         report.fired, report.source, report.lost, report.failed)
            if report.candidates < self.batch or self.stopping.is_set() or report.total_fired == 0:
                break
        if self.auto_assign_after is not None and not self.stopping.is_set():
            report.dispatch = dispatch.drain(self.session_factory, after=self.auto_assign_after,
                                             now=self.clock(), batch=self.batch,
                                             stopping=self.stopping.is_set)
            d = report.dispatch
            if d.dispatched or d.failed:
                log.info("dispatched %d tickets (%d wait for a free agent, %d lost to others, "
                         "%d failed)", d.dispatched, d.undispatched, d.lost, d.failed)
        if self.metrics is not None:
            self.metrics.round_done(report)
        return report

    def run(self) -> None:
        log.info("worker started (interval %.1fs, index %s)", self.interval,
                 self.index.key if self.index is not None else "none: database queries")
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:  # the database may be restarting: log and try again later
                log.exception("worker round failed")
                if self.metrics is not None:
                    self.metrics.round_failed()
            self.stopping.wait(self.interval)
        log.info("worker stopped")

    def stop(self, *_args: object) -> None:
        self.stopping.set()


def main(argv: Sequence[str] | None = None) -> int:
    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.metrics_listener import listener_config, start_listener
    from ticketing.core.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m ticketing.desk.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    parser.add_argument("--batch", type=int, default=500, help="timers per round (default 500)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    settings = load_settings()
    session_factory = make_session_factory(make_engine(settings.database_url),
                                           schedule=settings.schedule)
    index = None
    if settings.redis_url:
        import redis

        index = timer_index.RedisTimerIndex(redis.Redis.from_url(settings.redis_url, decode_responses=True))
        timer_index.install(session_factory, index)  # the worker's own changes update the index
        live_events.install(session_factory, index.client)  # warnings and breaches reach desk pages
        wakeups.install(session_factory, index.client)  # surveys, follow-ups: gateways at once
    metrics = WorkerMetrics()
    worker = Worker(session_factory, index=index, interval=settings.worker_interval_seconds,
                    batch=args.batch,
                    auto_assign_after=dispatch.after_from_seconds(settings.auto_assign_after_seconds),
                    metrics=metrics)
    if args.once:
        report = worker.step()
        log.info("one round: %d candidates, fired %s, dispatched %d (%d undispatched)",
                 report.candidates, report.fired, report.dispatch.dispatched,
                 report.dispatch.undispatched)
        return 0
    start_listener(metrics.registry, listener_config(os.environ), process="worker")
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
