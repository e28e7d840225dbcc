"""Engines and session factories.

Services receive a ``Session`` and never commit; the edge (a request, an action, the worker)
opens one unit of work with ``with session_factory.begin() as session:``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ticketing.core.settings import SCHEDULE_KEY, ScheduleSettings


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for ``url``: SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN itself
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url and url != "sqlite://":
                cursor.execute("PRAGMA journal_mode=WAL")
                # in WAL mode NORMAL keeps the file consistent after any crash and skips a
                # disk flush per commit; a power cut may lose the last commits (docs/
                # performance.md; PostgreSQL is the production database)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so concurrent writers queue instead of
            # failing with "database is locked" on upgrade from a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    ping_idle = not kwargs.get("pool_pre_ping", False)  # a caller may ask for every checkout
    if url.startswith("postgresql"):
        # short OLTP queries: JIT compilation costs more than it saves (bench/desk_load.py saw
        # +50 ms per queue query at 100,000 tickets)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("options", "-c jit=off")
        kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if ping_idle:
        ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 1.0  # a pooled connection unused this long is checked before it is used


def ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use when it sat idle (a database restarted meanwhile
    left it dead), not on every checkout as ``pool_pre_ping`` does: a busy process reuses its
    connections within milliseconds, and a round trip per transaction (3 a gateway turn) cost
    more than the rare failure it avoids. A connection that dies while in steady use fails its
    statement instead; SQLAlchemy then drops every connection of the pool made before it, and
    the callers treat the error as the database being away (a turn is deferred and replayed).
    """

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["kefu_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("kefu_idle_since")
        if since is None or time.monotonic() - since <= IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool replaces the connection and checks out again
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc
        if not alive:
            raise DisconnectionError("idle connection is gone")


def make_session_factory(engine: Engine, *, schedule: ScheduleSettings | None = None
                         ) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit and carry the deployment's
    ``schedule`` (time zone, business hours, …) to the services that use them; without one,
    the defaults (``ticketing.core.settings.schedule_of``)."""
    info = {SCHEDULE_KEY: schedule} if schedule is not None else {}
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


def after_commit(
    target: sessionmaker[Session] | type[Session], *, key: str,
    collect: Callable[[Session, Any], Any], deliver: Callable[[Any], None],
) -> Callable[[], None]:
    """Tell the world outside the database what a transaction changed, once it is committed.

    After each flush ``collect(session, pending)`` returns what is pending so far (kept in
    ``session.info[key]``); after the commit ``deliver(pending)`` runs when there is any; a
    rollback forgets it. ``deliver`` must not raise: the commit has happened. Returns an
    uninstaller. Used to feed Redis (the timer index, the desk's wake-ups) from any process.
    """

    def on_flush(session: Session, _context: Any) -> None:
        session.info[key] = collect(session, session.info.get(key))

    def on_commit(session: Session) -> None:
        pending = session.info.pop(key, None)
        if pending:
            deliver(pending)

    def on_rollback(session: Session) -> None:
        session.info.pop(key, None)

    listeners = (("after_flush", on_flush), ("after_commit", on_commit),
                 ("after_rollback", on_rollback))
    for name, fn in listeners:
        event.listen(target, name, fn)

    def uninstall() -> None:
        for name, fn in listeners:
            event.remove(target, name, fn)

    return uninstall
