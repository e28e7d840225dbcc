"""INSERT ... ON CONFLICT DO UPDATE on PostgreSQL and SQLite alike, for derived rows that two
processes may write at once (the reports' facts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(session: Session, model: type[Any], rows: list[dict[str, Any]],
            keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for chunk in _chunks(rows, 500):
        stmt = insert(model).values(chunk)
        columns = {c: stmt.excluded[c] for c in chunk[0] if c not in keys}
        session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=columns))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
