"""The alert job: one transaction per round, failures logged and raised, a loop that survives
a failed round and stops when told."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import select

from tests.ticketing.reports.test_alerts import NOW, managers, phones_jump
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Alert, Base, Notification
from ticketing.reports import jobs


def test_run_alerts_commits_one_round(session_factory, session, make) -> None:
    heard = managers(make)
    phones_jump(session, make)
    session.commit()

    assert jobs.run_alerts(session_factory, now=NOW) == jobs.AlertRun(opened=1, refreshed=0, resolved=0)
    assert jobs.run_alerts(session_factory, now=NOW) == jobs.AlertRun(opened=0, refreshed=1, resolved=0)

    with session_factory() as s:
        assert [a.subject for a in s.scalars(select(Alert))] == ["category:phones"]
        assert len(list(s.scalars(select(Notification)))) == len(heard)


def test_a_failed_round_is_logged_raised_and_saves_nothing(caplog) -> None:
    broken = make_session_factory(make_engine("sqlite://"))  # no tables at all
    with caplog.at_level(logging.ERROR, logger="ticketing.reports.jobs"), pytest.raises(Exception):
        jobs.run_alerts(broken, now=NOW)
    assert "alert evaluation at 2026-03-02T02:00:00+00:00 failed" in caplog.text


def test_the_loop_outlives_failed_rounds_and_stops_when_told() -> None:
    broken = make_session_factory(make_engine("sqlite://"))
    rounds = threading.Semaphore(0)

    def clock():
        rounds.release()
        return NOW

    job = jobs.AlertJob(broken, every_minutes=0.0005, clock=clock)
    runner = threading.Thread(target=job.run)
    runner.start()
    for _ in range(3):  # three rounds, each failing, none ending the loop
        assert rounds.acquire(timeout=10)
    job.stop()
    runner.join(10)
    assert not runner.is_alive()


def test_main_once_uses_the_settings_database(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    monkeypatch.setenv("KEFU_DATABASE_URL", url)
    monkeypatch.setenv("KEFU_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    assert jobs.main(["--once"]) == 0
    with pytest.raises(SystemExit):
        jobs.main(["--every", "0"])


def test_the_day_cells_are_built_between_alert_rounds(monkeypatch) -> None:
    built, evaluated = threading.Semaphore(0), []
    monkeypatch.setattr(jobs, "build_cells", lambda *_a, **_k: built.release())
    monkeypatch.setattr(jobs, "run_alerts", lambda *_a, **_k: evaluated.append(1) or
                        jobs.AlertRun(0, 0, 0))
    job = jobs.AlertJob(make_session_factory(make_engine("sqlite://")), every_minutes=10,
                        cells_every_minutes=0.0005, clock=lambda: NOW)
    runner = threading.Thread(target=job.run)
    runner.start()
    for _ in range(5):  # five builds (0.03 s apart) while the next alert round is 10 min away
        assert built.acquire(timeout=10)
    job.stop()
    runner.join(10)
    assert evaluated == [1]
