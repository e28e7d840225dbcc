"""The engines: SQLite with WAL without a flush per commit and foreign keys; PostgreSQL's pooled
connections checked only after sitting idle."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ticketing.core import db
from ticketing.core.db import make_engine


def test_a_sqlite_file_runs_in_wal_with_normal_sync_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _terminate(pid: int) -> None:
    from tests.conftest import PG_URL

    killer = make_engine(PG_URL, poolclass=NullPool)
    with killer.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    killer.dispose()


def test_a_connection_that_sat_idle_is_checked_and_replaced_when_gone(
        pg_engine, monkeypatch) -> None:
    """PostgreSQL restarted while the pool's connection was idle: the next transaction gets
    a new connection without an error, and a connection in steady use is not pinged."""
    from tests.conftest import PG_URL

    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or
                        real_ping(conn))
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first and pings == []  # in steady use: no round trip
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.05)
    time.sleep(0.1)
    _terminate(first)
    second = _backend_pid(engine)  # pinged, found gone, replaced: no error
    assert second != first and len(pings) == 1
    engine.dispose()


def test_a_connection_lost_in_steady_use_fails_once_then_the_pool_is_renewed(pg_engine) -> None:
    from tests.conftest import PG_URL

    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    first = _backend_pid(engine)
    _terminate(first)
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != first
    engine.dispose()
