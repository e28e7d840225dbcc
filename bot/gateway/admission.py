"""Admission to the assistant: who may have a turn in Rasa now, so a flood cannot starve customers.

Measured on the single-process stack: 50 anonymous visitors each sending one long message
pushed a verified customer's 0.07 s turn to the 30 s timeout, because every turn went to Rasa
at once and Rasa works through them on one core. Three rules bound that:

1. **One turn per visitor.** A conversation's messages are handled one at a time in order
   (``lanes.py`` in this process), so one visitor never has more than one turn in Rasa.
2. **A global cap.** At most ``capacity`` turns of this gateway are in Rasa at once; the
   others wait here, where waiting costs nothing, instead of inside Rasa, where it slows
   every turn.
3. **Anonymous visitors get a smaller share.** Visitors no shop account stands behind
   (``verified=False``) may hold at most ``anonymous`` of the slots; the rest are kept for
   verified customers, and when a slot frees a waiting verified customer goes first. A
   verified customer's turn therefore waits at most for the anonymous turns already in Rasa,
   never for the whole queue. (What one turn costs is bounded separately: Rasa sees at most
   ``KEFU_NLU_MAX_CHARS`` characters of a message, see ``payloads.for_nlu``.)

A turn that cannot be admitted within ``timeout`` raises :class:`Overloaded`; the gateway then
tells an anonymous visitor to try again shortly and gives a verified customer the apology and
ticket of a slow assistant. This is per gateway process: with N gateways, Rasa sees at most N ×
``capacity`` turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ticketing.core.errors import KefuError


class Overloaded(KefuError):
    """No turn slot freed in time: the assistant is busier than it can answer."""

    code = "overloaded"
    message_zh = "当前咨询人数较多，请稍后再试。"
    message_en = "Many people are asking right now; please try again in a moment."


class Admission:
    """A counting gate with a reserved share for verified customers (see the module docstring)."""

    def __init__(self, *, capacity: int, anonymous: int) -> None:
        self.capacity = max(1, capacity)
        self.anonymous = max(1, min(anonymous, self.capacity))
        self.in_use = 0
        self.anonymous_in_use = 0
        self.verified_waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Condition()

    def _condition(self) -> asyncio.Condition:
        """The condition of the running loop (tests run one gateway under several loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._changed = loop, asyncio.Condition()
        return self._changed

    def _may_enter(self, verified: bool) -> bool:
        if self.in_use >= self.capacity:
            return False
        if verified:
            return True
        return self.anonymous_in_use < self.anonymous and self.verified_waiting == 0

    @asynccontextmanager
    async def slot(self, *, verified: bool, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold one turn slot for the body; raise :class:`Overloaded` after ``timeout`` seconds."""
        changed = self._condition()
        async with changed:
            if verified:
                self.verified_waiting += 1
            try:
                await asyncio.wait_for(changed.wait_for(lambda: self._may_enter(verified)),
                                       timeout=timeout)
            except asyncio.TimeoutError:
                raise Overloaded("no assistant slot", verified=verified) from None
            finally:
                if verified:
                    self.verified_waiting -= 1
                    changed.notify_all()  # anonymous waiters may now be allowed in
            self.in_use += 1
            if not verified:
                self.anonymous_in_use += 1
        try:
            yield
        finally:
            async with changed:
                self.in_use -= 1
                if not verified:
                    self.anonymous_in_use -= 1
                changed.notify_all()
