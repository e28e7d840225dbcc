"""Action tests run real actions against the real test databases (SQLite, PostgreSQL).

Arrange with the ``session``/``make`` fixtures, then end that transaction (``session.commit()``
or ``session.rollback()``) before running an action: on SQLite every transaction starts with
``BEGIN IMMEDIATE`` and holds the write lock until it ends, so the action would wait.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from actions import runtime
from ticketing.core.pii import PiiCipher


@pytest.fixture
def action_backend(session_factory: sessionmaker[Session], cipher: PiiCipher) -> Iterator[runtime.Backend]:
    """The backend the actions use, on the test database; arrange data and commit first."""
    backend = runtime.Backend(session_factory, cipher, timezone="Asia/Shanghai")
    runtime.configure(backend)
    yield backend
    runtime.configure(None)
