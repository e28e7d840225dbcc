"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from ticketing.core.db import make_engine
from ticketing.core.migrate import alembic_config, upgrade
from ticketing.core.models import Base


def _diff(connection) -> list[object]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(ctx, Base.metadata)


def test_sqlite_upgrade_matches_models_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)  # a second run is a no-op
    engine = make_engine(url)
    with engine.connect() as conn:
        assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
        assert _diff(conn) == []
    engine.dispose()


def test_postgres_upgrade_and_downgrade() -> None:
    pg = os.environ.get("KEFU_TEST_DATABASE_URL")
    if not pg:
        pytest.skip("PostgreSQL test (set KEFU_TEST_DATABASE_URL)")
    engine = make_engine(pg)
    schema = "kefu_migration_test"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"SET search_path TO {schema}"))
            cfg = alembic_config(pg)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert _diff(conn) == []
            command.downgrade(cfg, "base")
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()
