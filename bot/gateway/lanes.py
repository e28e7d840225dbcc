"""One lane per conversation: its messages are handled one at a time, in arrival order.

Different conversations run in parallel. ``asyncio.Lock`` wakes waiters first-in first-out,
and a caller takes its lane before its first ``await``, so arrival order is kept.

With several gateway processes a lane also takes the conversation's ``shared`` lock
(:mod:`bot.gateway.conversation_lock`) once it is this process's turn: the local lane stays
because it keeps arrival order within the process for free and means only one task per
process polls Redis (or holds a database connection) for a conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.gateway.conversation_lock import TurnLock


class Lanes:
    def __init__(self, shared: TurnLock | None = None) -> None:
        self.shared = shared
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Hold the conversation's lane; yields whether no other process can hold it too
        (True without a shared lock: one process; False when the shared lock failed open)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                if self.shared is None:
                    yield True
                else:
                    async with self.shared.hold(key) as held:
                        yield bool(held)
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody waiting: forget the lane
                del self._users[key]
                del self._locks[key]

    def busy(self, key: str) -> bool:
        return key in self._users

    def __len__(self) -> int:
        return len(self._locks)
