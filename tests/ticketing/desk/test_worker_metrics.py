"""The SLA worker's metrics (ticketing.desk.worker_metrics): timers fired by action, their lag
from due to fired, handler failures, failed rounds and the last round's time, served over
HTTP by the listener a port turns on."""

from __future__ import annotations

import threading

import httpx

from tests.ticketing.desk.test_sla import H, T0
from tests.ticketing.desk.test_worker import Recorder, one_ticket
from tests.ticketing.metrics_process import samples, scrape_process
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.metrics_listener import ListenerConfig, start_listener
from ticketing.core.models import TimerKind
from ticketing.desk import worker
from ticketing.desk.timer_index import DatabaseDueSource
from ticketing.desk.worker_metrics import WorkerMetrics


def test_run_once_reports_how_late_each_timer_fired(make, session, session_factory) -> None:
    _ticket, timers = one_ticket(make, session)
    due_at = timers[TimerKind.FIRST_RESPONSE].fire_at  # its warning
    report = worker.run_once(session_factory, due_source=DatabaseDueSource(session_factory),
                             handlers=Recorder().table, now=T0 + 20 * H)
    assert report.lags == [("warning", (T0 + 20 * H - due_at).total_seconds())]


def test_a_round_is_counted_and_served_on_the_metrics_port(make, session, session_factory) -> None:
    _ticket, timers = one_ticket(make, session)
    first = timers[TimerKind.FIRST_RESPONSE]
    metrics = WorkerMetrics()
    loop = worker.Worker(session_factory, index=None, handlers=Recorder(fail_for={first.id}).table,
                         clock=lambda: T0 + 20 * H, auto_assign_after=None, metrics=metrics)
    loop.step()  # the warning's handler fails: rolled back, counted
    loop.handlers = Recorder().table
    loop.step()  # fired
    listener = start_listener(metrics.registry, ListenerConfig(0), process="worker")
    assert listener is not None
    try:
        page = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=5).text
    finally:
        listener.close()
    got = samples(page)
    lag = (T0 + 20 * H - first.fire_at).total_seconds()
    assert got[("kefu_worker_timers_fired_total", (("action", "warning"),))] == 1
    assert got[("kefu_worker_timer_lag_seconds_count", (("action", "warning"),))] == 1
    assert got[("kefu_worker_timer_lag_seconds_sum", (("action", "warning"),))] == lag
    assert got[("kefu_worker_timer_failures_total", ())] == 1
    assert got[("kefu_worker_passes_total", (("source", "database"),))] == 2
    assert got[("kefu_worker_last_round_timestamp_seconds", ())] > 0
    assert got[("kefu_worker_loop_errors_total", ())] == 0
    assert ("kefu_worker_timers_lost_total", ()) in got
    assert ("kefu_worker_dispatched_total", (("outcome", "dispatched"),)) in got


def test_a_failed_round_counts_as_a_loop_error() -> None:
    broken = make_session_factory(make_engine("sqlite://"))  # no tables: every round fails
    rounds = threading.Semaphore(0)

    def clock():
        rounds.release()
        return T0

    metrics = WorkerMetrics()
    loop = worker.Worker(broken, index=None, interval=0.001, clock=clock, auto_assign_after=None,
                         metrics=metrics)
    runner = threading.Thread(target=loop.run)
    runner.start()
    for _ in range(3):  # the third round starts only after the first two failed
        assert rounds.acquire(timeout=10)
    loop.stop()
    runner.join(10)
    assert not runner.is_alive()
    got = samples(metrics.render().decode())
    assert got[("kefu_worker_loop_errors_total", ())] >= 2
    assert got[("kefu_worker_last_round_timestamp_seconds", ())] == 0


def test_the_worker_process_serves_its_metrics_on_the_configured_port(tmp_path) -> None:
    page = scrape_process("ticketing.desk.worker", tmp_path)
    for name in ("kefu_worker_timers_fired_total", "kefu_worker_timer_lag_seconds",
                 "kefu_worker_loop_errors_total", "kefu_worker_last_round_timestamp_seconds"):
        assert f"# TYPE {name}" in page
