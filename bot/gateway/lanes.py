"""One lane per conversation: its messages are handled one at a time, in arrival order.

Different conversations run in parallel. ``asyncio.Lock`` wakes waiters first-in first-out,
and a caller takes its lane before its first ``await``, so arrival order is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Lanes:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody waiting: forget the lane
                del self._users[key]
                del self._locks[key]

    def busy(self, key: str) -> bool:
        return key in self._users

    def __len__(self) -> int:
        return len(self._locks)
