"""The benchmarks' own PostgreSQL databases: which ones they may touch, and making them.

A benchmark fills and empties its database, so it refuses any database but a local one whose
name says "bench" (never the tests', CI's or PostgreSQL's own).
"""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

FORBIDDEN_DATABASES = {"test", "kefu_ci", "postgres", "template0", "template1"}


def check_database_url(url: str, script: str) -> str:
    """The database's name, or exit naming ``script`` when the URL is not a local bench one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        sys.exit(f"{script} needs PostgreSQL (--database-url postgresql+psycopg://…)")
    if parsed.host not in ("127.0.0.1", "localhost"):
        sys.exit(f"{script} only talks to 127.0.0.1")
    name = parsed.database or ""
    if name in FORBIDDEN_DATABASES or "bench" not in name:
        sys.exit(f"refusing database {name!r}: use a benchmark database (its name has 'bench')")
    return name


def ensure_database(url: str, name: str) -> None:
    """Create database ``name`` on ``url``'s server when it is missing."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                print(f"created database {name}")
    finally:
        admin.dispose()
