"""Shared fixtures: every database test runs on SQLite and, when
``KEFU_TEST_DATABASE_URL`` is set, on PostgreSQL too; Redis tests need ``KEFU_TEST_REDIS_URL``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import Base
from ticketing.core.pii import PiiCipher

PG_URL = os.environ.get("KEFU_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
TEST_KEY = base64.b64decode(base64.b64encode(b"k" * 32))

BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"kefu databases: {', '.join(BACKENDS)}"]
    if not PG_URL:
        lines.append("KEFU_TEST_DATABASE_URL unset: PostgreSQL-only tests are skipped")
    if not REDIS_URL:
        lines.append("KEFU_TEST_REDIS_URL unset: Redis tests are skipped")
    return lines


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (concurrency tests)")
    config.addinivalue_line("markers", "redis: needs a real Redis")


@pytest.fixture(scope="session")
def _pg_engine() -> Iterator[Engine | None]:
    if not PG_URL:
        yield None
        return
    engine = make_engine(PG_URL, pool_size=60, max_overflow=20)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, _pg_engine: Engine | None) -> Iterator[Engine]:
    """A fresh, empty schema on each backend."""
    if request.param == "postgres":
        assert _pg_engine is not None
        _truncate_all(_pg_engine)
        yield _pg_engine
        return
    eng = make_engine(f"sqlite:///{tmp_path / 'kefu-test.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def backend(engine: Engine) -> str:
    return engine.dialect.name


@pytest.fixture
def pg_engine(engine: Engine) -> Engine:
    """The PostgreSQL engine; the SQLite run of a test using it is skipped."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL-only test: not applicable to the SQLite run")
    return engine


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and asserting; tests commit explicitly when they need to."""
    with session_factory() as s:
        yield s
        s.rollback()


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher(TEST_KEY)


@pytest.fixture
def redis_client() -> Iterator[object]:
    """A real Redis on the database named in the URL (CI uses /15), flushed before and after."""
    if not REDIS_URL:
        pytest.skip("Redis test (set KEFU_TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make(session: Session, cipher: PiiCipher) -> "Factory":
    from tests.factories import Factory

    return Factory(session, cipher)


if False:  # pragma: no cover - typing only
    from tests.assistant.live import LiveAssistant
    from tests.bot.gateway_harness import Desk
    from tests.factories import Factory


# --- one real assistant for every live test (tests/bot, tests/e2e) ------------------------------
# Starting Rasa costs ~30 s, so the gateway's tests and the end-to-end scenarios share one
# (Rasa + action server over a SQLite demo shop); each module runs its own gateway process
# (``tests/bot/gateway_harness.py``) and uses its own conversations. Imported lazily: the
# other tests never pay for them.

@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> "Iterator[LiveAssistant]":
    from bot.rasa_config import ROOT
    from tests.assistant.live import LiveAssistant

    if not (ROOT / "models" / "kefu.tar.gz").exists():
        pytest.fail("no trained model: run `make train` (make test does)")
    var: Path = tmp_path_factory.mktemp("gateway-stack")
    live = LiveAssistant(var)
    live.seed()
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def desk(live_stack: "LiveAssistant") -> "Iterator[Desk]":
    from tests.bot.gateway_harness import Desk

    d = Desk(live_stack.database_url)
    yield d
    d.close()
