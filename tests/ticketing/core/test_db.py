"""The SQLite engine: WAL without a flush per commit, foreign keys, writers that queue."""

from __future__ import annotations

from pathlib import Path

from ticketing.core.db import make_engine


def test_a_sqlite_file_runs_in_wal_with_normal_sync_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
