"""The alerts job's metrics (ticketing.reports.job_metrics): rounds by outcome, alerts raised,
round time and the last good round, served over HTTP by the listener a port turns on."""

from __future__ import annotations

import threading

import httpx

from tests.ticketing.reports.test_alerts import NOW, managers, phones_jump
from tests.ticketing.metrics_process import samples, scrape_process
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.metrics_listener import ListenerConfig, start_listener
from ticketing.reports import jobs
from ticketing.reports.job_metrics import AlertJobMetrics


def _rounds(session_factory, metrics: AlertJobMetrics, count: int) -> None:
    """Run the job's loop for ``count`` rounds (the clock is read once per round)."""
    started = threading.Semaphore(0)

    def clock():
        started.release()
        return NOW

    job = jobs.AlertJob(session_factory, every_minutes=0.00001, clock=clock, metrics=metrics)
    runner = threading.Thread(target=job.run)
    runner.start()
    for _ in range(count + 1):  # round count + 1 starts after round count has been counted
        assert started.acquire(timeout=30)
    job.stop()
    runner.join(30)
    assert not runner.is_alive()


def test_a_round_that_raises_an_alert_is_counted_and_served(session_factory, session, make) -> None:
    managers(make)
    phones_jump(session, make)
    session.commit()
    metrics = AlertJobMetrics()
    _rounds(session_factory, metrics, 1)
    listener = start_listener(metrics.registry, ListenerConfig(0), process="alerts")
    assert listener is not None
    try:
        page = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=5).text
    finally:
        listener.close()
    got = samples(page)
    assert got[("kefu_alerts_raised_total", ())] == 1  # the first round opened it
    assert got[("kefu_alerts_runs_total", (("outcome", "ok"),))] >= 1
    assert got[("kefu_alerts_runs_total", (("outcome", "failed"),))] == 0
    assert got[("kefu_alerts_run_seconds_count", ())] >= 1
    assert got[("kefu_alerts_last_run_timestamp_seconds", ())] > 0
    assert ("kefu_alerts_resolved_total", ()) in got


def test_a_failed_round_is_counted() -> None:
    broken = make_session_factory(make_engine("sqlite://"))  # no tables at all
    metrics = AlertJobMetrics()
    _rounds(broken, metrics, 2)
    got = samples(metrics.render().decode())
    assert got[("kefu_alerts_runs_total", (("outcome", "failed"),))] >= 2
    assert got[("kefu_alerts_last_run_timestamp_seconds", ())] == 0


def test_the_job_process_serves_its_metrics_on_the_configured_port(tmp_path) -> None:
    page = scrape_process("ticketing.reports.jobs", tmp_path)
    for name in ("kefu_alerts_runs_total", "kefu_alerts_raised_total", "kefu_alerts_run_seconds",
                 "kefu_alerts_last_run_timestamp_seconds"):
        assert f"# TYPE {name}" in page
