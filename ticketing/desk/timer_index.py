"""Where the worker learns what is due: a Redis sorted set, or the database itself.

The database is the system of record; Redis only holds an index of ``fire_at`` per active
timer (member = timer id, score = epoch seconds) so "what is due now" is one ZRANGEBYSCORE,
O(log n), however many millions of timers wait. The index may be stale or lost at any time:
the worker confirms every candidate against the database, repairs what it finds wrong and
rebuilds the set when its marker key is gone. Without Redis the indexed query on
``ix_sla_timers_due`` does the same job.

The index is fed after commit by session events (see :func:`install`), so a rolled-back
transaction never leaves a trace and a Redis outage never breaks a commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.db import after_commit
from ticketing.core.models import SlaTimer, TimerStatus

log = logging.getLogger(__name__)

DEFAULT_KEY = "kefu:sla:due"
_PENDING = "kefu_timer_index_pending"  # session.info key: {timer_id: fire_at | None}

try:  # redis is a dependency, but the single-machine set-up must import without a server
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover
    RedisError = OSError  # type: ignore[misc,assignment]

INDEX_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


def epoch(moment: datetime) -> float:
    return moment.timestamp()


class DueSource(Protocol):
    """Candidates for firing; the worker re-checks each one in the database."""

    name: str

    def due(self, *, now: datetime, limit: int) -> list[int]: ...

    def repair(self, entries: Sequence[tuple[int, datetime | None]], *, now: datetime) -> None:
        """Correct candidates that turned out not to be due (fire_at None = not active)."""


class DatabaseDueSource:
    """The indexed query: status='active' AND fire_at <= now ORDER BY fire_at LIMIT n."""

    name = "database"

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def due(self, *, now: datetime, limit: int) -> list[int]:
        query = (
            select(SlaTimer.id)
            .where(SlaTimer.status == TimerStatus.ACTIVE, SlaTimer.fire_at <= now)
            .order_by(SlaTimer.fire_at)
            .limit(limit)
        )
        with self.session_factory() as session:
            return list(session.scalars(query))

    def repair(self, entries: Sequence[tuple[int, datetime | None]], *, now: datetime) -> None:
        return None  # the database cannot disagree with itself


class FullScanDueSource(DatabaseDueSource):
    """The same question asked so no index can answer it: only for the benchmark's baseline."""

    name = "full scan"

    def due(self, *, now: datetime, limit: int) -> list[int]:
        hidden_fire_at = func.coalesce(SlaTimer.fire_at, SlaTimer.fire_at)  # an expression
        query = (
            select(SlaTimer.id)
            .where(func.lower(SlaTimer.status) == TimerStatus.ACTIVE.value, hidden_fire_at <= now)
            .order_by(hidden_fire_at)
            .limit(limit)
        )
        with self.session_factory() as session:
            return list(session.scalars(query))


# Remove a member only if its score is still a due one: a concurrent commit may have just
# given it a new, later score, and that entry must survive.
_ZREM_IF_DUE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


class RedisTimerIndex:
    """The sorted set of active timers' ``fire_at``, and its marker of completeness."""

    name = "redis"

    def __init__(self, client: Any, *, key: str = DEFAULT_KEY) -> None:
        self.client = client
        self.key = key
        self.marker_key = f"{key}:built"
        self._zrem_if_due = client.register_script(_ZREM_IF_DUE)

    # --- reading ------------------------------------------------------------------------------
    def due(self, *, now: datetime, limit: int) -> list[int]:
        members = self.client.zrangebyscore(self.key, "-inf", epoch(now), start=0, num=limit)
        return [int(m) for m in members]

    def is_built(self) -> bool:
        """False after a flush, a restart without persistence or a fresh install: rebuild."""
        return bool(self.client.exists(self.marker_key))

    def size(self) -> int:
        return int(self.client.zcard(self.key))

    # --- writing ------------------------------------------------------------------------------
    def apply(self, changes: dict[int, datetime | None]) -> None:
        """Mirror committed changes: a fire_at adds/moves the member, None removes it."""
        if not changes:
            return
        pipe = self.client.pipeline(transaction=False)
        adds = {str(tid): epoch(at) for tid, at in changes.items() if at is not None}
        removes = [str(tid) for tid, at in changes.items() if at is None]
        if adds:
            pipe.zadd(self.key, adds)
        if removes:
            pipe.zrem(self.key, *removes)
        pipe.execute()

    def repair(self, entries: Sequence[tuple[int, datetime | None]], *, now: datetime) -> None:
        pipe = self.client.pipeline(transaction=False)
        for timer_id, fire_at in entries:
            if fire_at is not None:
                pipe.zadd(self.key, {str(timer_id): epoch(fire_at)})
            else:
                self._zrem_if_due(keys=[self.key], args=[str(timer_id), epoch(now)], client=pipe)
        pipe.execute()

    def rebuild(self, session_factory: sessionmaker[Session], *, batch: int = 10_000) -> int:
        """Add every active timer from the database, then set the marker; returns the count.

        It merges rather than replaces, so nothing committed meanwhile is lost; entries for
        timers that stopped are left to the worker, which drops them when they come due.
        """
        query = (
            select(SlaTimer.id, SlaTimer.fire_at)
            .where(SlaTimer.status == TimerStatus.ACTIVE, SlaTimer.fire_at.is_not(None))
            .execution_options(yield_per=batch)
        )
        count = 0
        with session_factory() as session:
            for rows in session.execute(query).partitions(batch):
                self.client.zadd(self.key, {str(r.id): epoch(r.fire_at) for r in rows})
                count += len(rows)
        self.client.set(self.marker_key, utcnow().isoformat())
        log.info("timer index %s rebuilt from the database: %d active timers", self.key, count)
        return count

    def clear(self) -> None:
        self.client.delete(self.key, self.marker_key)


# --- keeping the index in sync with commits ----------------------------------------------------
def mark(session: Session, timer_id: int, fire_at: datetime | None) -> None:
    """Record a change made outside the unit of work (a bulk UPDATE) for the after-commit push."""
    session.info.setdefault(_PENDING, {})[timer_id] = fire_at


def _index_value(timer: SlaTimer) -> datetime | None:
    return timer.fire_at if timer.status is TimerStatus.ACTIVE else None


def install(target: sessionmaker[Session] | type[Session], index: RedisTimerIndex) -> Callable[[], None]:
    """Keep ``index`` in sync with every session made by ``target``; returns an uninstaller.

    after_flush collects SlaTimer rows that changed; after_commit pushes them; after_rollback
    forgets them. Redis errors are logged and swallowed: the commit already happened and the
    worker's reconciliation will notice the gap.
    """

    def collect(session: Session, pending: dict[int, datetime | None] | None
                ) -> dict[int, datetime | None]:
        pending = pending if pending is not None else {}
        for obj in _changed(session.new, session.dirty, session):
            pending[obj.id] = _index_value(obj)
        for obj in session.deleted:
            if isinstance(obj, SlaTimer):
                pending[obj.id] = None
        return pending

    def deliver(pending: dict[int, datetime | None]) -> None:
        try:
            index.apply(pending)
        except INDEX_ERRORS as exc:
            log.warning("timer index update failed for %d timers (reconcile will fix): %s",
                        len(pending), exc)

    return after_commit(target, key=_PENDING, collect=collect, deliver=deliver)


def _changed(new: Iterable[object], dirty: Iterable[object], session: Session) -> Iterable[SlaTimer]:
    for obj in new:
        if isinstance(obj, SlaTimer):
            yield obj
    for obj in dirty:
        if isinstance(obj, SlaTimer) and session.is_modified(obj, include_collections=False):
            yield obj
