"""The action server's connection to the shop: one database, one cipher, built on first use.

Actions import nothing that does I/O at import time (rasa_sdk imports every module of the
package when it starts); the backend is created lazily from ``KEFU_*`` settings, and tests
swap in their own with :func:`configure`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.pii import PiiCipher
from ticketing.core.settings import DEFAULT_TIMEZONE, load_settings


@dataclass
class Backend:
    """What every action needs: sessions, the PII cipher and the shop's time zone."""

    session_factory: sessionmaker[Session]
    cipher: PiiCipher
    timezone: str = DEFAULT_TIMEZONE

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction per action: committed on success, rolled back on any error."""
        with self.session_factory.begin() as session:
            yield session


_backend: Backend | None = None
_lock = threading.Lock()


def _from_settings() -> Backend:
    from ticketing.conversations import wakeups
    from ticketing.desk import live_events, timer_index
    from ticketing.core.db import make_engine, make_session_factory

    settings = load_settings()
    factory = make_session_factory(make_engine(settings.database_url), schedule=settings.schedule)
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                      socket_timeout=2, socket_connect_timeout=2)
        timer_index.install(factory, timer_index.RedisTimerIndex(client))
        live_events.install(factory, client)  # desk pages see new tickets and messages live
        wakeups.install(factory, client)  # what actions queue for customers: delivered at once
    return Backend(factory, PiiCipher(settings.pii_key), timezone=settings.timezone)


def backend() -> Backend:
    """The process-wide backend, created from the environment on first use."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = _from_settings()
    return _backend


def configure(new: Backend | None) -> None:
    """Install a backend (tests), or ``None`` to build it from settings again."""
    global _backend
    _backend = new
