"""A simulated widget customer that behaves like ``bot/widget/static/widget.js`` under faults.

One WebSocket per gateway, both open, the conversation's messages alternating between them
(docs/gateway.md's protocol: ``hello`` → ``welcome`` with the history, ``message`` with a
client id, ``received``, ``handled``). Like the widget it resends a message whose socket died
before it was stored (the same client id: the gateway deduplicates), sends one the gateway has
not confirmed (``received``) again after 15, 30 and 60 s, retries an ``unavailable`` one after
3 s, and reconnects a dropped socket. It records every frame it is
shown with its id, so the test can count what was delivered twice or out of order.

When a turn's ``handled`` frame cannot come (the socket died after the message was stored, or
a resend is a ``duplicate``), the customer waits as a person would, for the answer: here the
test reads the inbound row until it is routed (the database is the judge of "answered").
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RETRY_UNAVAILABLE = 3.0
TURN_LIMIT = 150.0  # seconds a customer waits for one turn before the test calls it silence
STUCK = 15.0  # seconds without a ``handled`` frame before the customer looks at the inbound row
CONNECT_WAIT = 10.0  # seconds for one WebSocket handshake before trying again
CONFIRM_WAITS = (15.0, 30.0, 60.0)  # widget.js CONFIRM_TIMEOUT_MS: unconfirmed, sent again


@dataclass
class Turn:
    client_id: str
    text: str
    gateway: int
    sent: float  # monotonic
    done: float = 0.0
    route: str | None = None  # from the handled frame, or the inbound row
    attempts: int = 0  # frames sent (resends included)
    unconfirmed_resends: int = 0  # sent again on a live socket that never said ``received``
    reconnects: int = 0
    unavailable: int = 0  # "unavailable" answers (retried after 3 s)
    via_database: bool = False  # completion seen in the inbound row, not a handled frame
    no_handled_frame: bool = False  # routed, yet the socket never said the turn ended


@dataclass
class Shown:
    """A message frame as the customer's page got it."""

    id: str
    at: float
    gateway: int
    live: bool  # False: from a welcome's history


@dataclass
class Customer:
    visitor: str
    language: str
    urls: list[str]
    routed: Callable[[str], Any]  # dedupe key -> awaitable route or None (inbound row)
    turns: list[Turn] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stored_ids: set[str] = field(default_factory=set)  # client ids in a welcome's history

    def __post_init__(self) -> None:
        self._ws: list[aiohttp.ClientWebSocketResponse | None] = [None] * len(self.urls)
        self._readers: list[asyncio.Task[None] | None] = [None] * len(self.urls)
        self._handled: dict[str, asyncio.Future[str]] = {}
        self._confirmed: set[str] = set()  # client ids a ``received`` frame confirmed
        self._dropped: list[asyncio.Event] = [asyncio.Event() for _ in self.urls]
        self._session: aiohttp.ClientSession | None = None

    # -- connections -----------------------------------------------------------------------------

    async def open(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        for i in range(len(self.urls)):
            await self._connect(i, deadline=time.monotonic() + 120)

    async def _connect(self, i: int, *, deadline: float) -> bool:
        """(Re)open the socket to gateway ``i``; False if it stays down until ``deadline``."""
        assert self._session is not None
        pause = 0.3
        while time.monotonic() < deadline:
            try:
                ws = await asyncio.wait_for(  # a handshake never answered must not hang here
                    self._session.ws_connect(self.urls[i], heartbeat=None,
                                             timeout=aiohttp.ClientWSTimeout(ws_close=5)),
                    timeout=CONNECT_WAIT)
                await ws.send_json({"type": "hello", "visitor": self.visitor, "token": None,
                                    "language": self.language})
                welcome = await ws.receive_json(timeout=30)
                if welcome.get("type") != "welcome":
                    await ws.close()
                    raise ConnectionError(f"no welcome: {welcome}")
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError,
                    TypeError, ValueError) as exc:
                self.errors.append(f"connect {i}: {type(exc).__name__}")
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, 2.0)
                continue
            now = time.monotonic()
            for entry in welcome.get("history") or []:
                if entry.get("direction") == "out":
                    self.shown.append(Shown(str(entry["id"]), now, i, live=False))
                elif entry.get("client_id"):
                    self.stored_ids.add(str(entry["client_id"]))
            self._ws[i] = ws
            self._dropped[i] = asyncio.Event()
            self._readers[i] = asyncio.create_task(self._read(i, ws))
            return True
        return False

    async def _read(self, i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                kind = frame.get("type")
                if kind == "message":
                    self.shown.append(Shown(str(frame.get("id")), time.monotonic(), i, live=True))
                elif kind == "received":
                    self._confirmed.add(str(frame.get("client_id")))
                elif kind == "handled":
                    waiter = self._handled.get(str(frame.get("client_id")))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(str(frame.get("route")))
        except (aiohttp.ClientError, ConnectionError, ValueError) as exc:
            self.errors.append(f"read {i}: {type(exc).__name__}")
        finally:
            if self._ws[i] is ws:
                self._ws[i] = None
            self._dropped[i].set()

    async def close(self) -> None:
        for i, ws in enumerate(self._ws):
            if ws is not None:
                await ws.close()
        for task in self._readers:
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    # -- one turn --------------------------------------------------------------------------------

    async def say(self, text: str, gateway: int) -> Turn:
        """Send one message through ``gateway`` and wait until it is answered (or routed)."""
        turn = Turn(f"m-{uuid.uuid4().hex[:20]}", text, gateway, time.monotonic())
        frame = {"type": "message", "client_id": turn.client_id, "text": text}
        self.turns.append(turn)
        deadline = turn.sent + TURN_LIMIT
        i = gateway
        while time.monotonic() < deadline:
            ws = self._ws[i]
            if ws is None:
                turn.reconnects += 1
                # the gateway is down or restarting: like a page, reconnect (either will do)
                if not await self._connect(i, deadline=time.monotonic() + 3):
                    i = 1 - i
                    continue
                ws = self._ws[i]
                if turn.client_id in self.stored_ids and turn.attempts:
                    await self._await_routed(turn, deadline)
                    return turn
            assert ws is not None
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._handled[turn.client_id] = waiter
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                continue  # the reader notices the drop; reconnect and resend
            turn.attempts += 1
            dropped = asyncio.ensure_future(self._dropped[i].wait())
            done: set[asyncio.Future[Any]] = set()
            waits = iter(CONFIRM_WAITS)
            resend_at = time.monotonic() + next(waits)
            while not done and time.monotonic() < deadline:
                done, _ = await asyncio.wait(
                    {waiter, dropped}, timeout=max(0.0, min(STUCK, resend_at - time.monotonic())),
                    return_when=asyncio.FIRST_COMPLETED)
                if not done and time.monotonic() >= resend_at:
                    resend_at = time.monotonic() + next(waits, CONFIRM_WAITS[-1])
                    if turn.client_id not in self._confirmed:  # widget.js checkConfirmed
                        try:
                            await ws.send_json(frame)
                            turn.attempts += 1
                            turn.unconfirmed_resends += 1
                        except (ConnectionError, RuntimeError, aiohttp.ClientError):
                            pass  # the reader notices the drop
                        continue
                if not done and await self.routed(f"{self.visitor}:{turn.client_id}"):
                    # routed: the frame is due right after the answers are delivered
                    done, _ = await asyncio.wait({waiter, dropped}, timeout=10,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    break  # still nothing: this page never heard the turn end, count it
            dropped.cancel()
            if not done:
                if time.monotonic() >= deadline:
                    break
                turn.no_handled_frame = True
                await self._await_routed(turn, deadline)
                return turn
            if waiter in done:
                route = waiter.result()
                if route == "unavailable":  # widget.js: keep it queued, try again in 3 s
                    turn.unavailable += 1
                    await asyncio.sleep(RETRY_UNAVAILABLE)
                    continue
                if route in ("duplicate", "deferred"):  # stored; answered by another attempt
                    turn.route = route  # or by the replay: wait for the answer
                    await self._await_routed(turn, deadline)
                    return turn
                turn.route, turn.done = route, time.monotonic()
                return turn
            # the socket died mid-turn: reconnect; resend only if it was not stored
            if self._ws[i] is not None and not self._dropped[i].is_set():
                continue
        return turn

    async def _await_routed(self, turn: Turn, deadline: float) -> None:
        key = f"{self.visitor}:{turn.client_id}"
        while time.monotonic() < deadline:
            route = await self.routed(key)
            if route is not None:
                turn.route = route if turn.route is None else f"{turn.route}->{route}"
                turn.done, turn.via_database = time.monotonic(), True
                return
            await asyncio.sleep(0.5)
