"""The load of bench/scale.py: scripted conversations whose every turn is timed and judged.

Why its own clients rather than gateway_load's and turn_latency's: at 50–100 conversations on
a loaded stack some turns go wrong, and the bench must count each way a turn can go wrong
instead of stopping at the first (those clients assert and raise). A turn is one of:

- ``ok``: answered by the assistant;
- ``apology``: answered, but with an apology (the action server's "something went wrong",
  the gateway's "busy"/"service down", an ``error`` frame such as ``rate_limited``);
- ``fallback``: the gateway gave up on the assistant (its own Rasa timeout, an empty answer):
  apology plus a fallback ticket, route ``fallback_ticket``;
- ``timeout``: no end of turn within ``--turn-timeout`` (client side);
- ``other``: anything else (HTTP error status, a dropped socket, a turn routed to a ticket).

A conversation stops at its first turn that is not ``ok`` (the customer now waits for a
person, or gave up). Everything runs in one asyncio process over one aiohttp session, so the
load generator stays cheap (its own CPU is reported beside the stack's).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from actions.failures import SORRY, SORRY_NO_TICKET
from bot.gateway import texts

OUTCOMES = ("ok", "apology", "fallback", "timeout", "other")
APOLOGIES = tuple(t.get(lang).split("{")[0][:24] for t in (SORRY, SORRY_NO_TICKET,
                  texts.SERVICE_DOWN, texts.BUSY, texts.RATE_LIMITED) for lang in ("zh", "en"))


@dataclass
class Tally:
    """What one level's turns came to."""

    latencies: list[float] = field(default_factory=list)  # every answered turn, errors too
    outcomes: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)  # e.g. "other: ws closed"

    def add(self, outcome: str, latency: float | None, detail: str | None = None) -> None:
        self.outcomes[outcome] += 1
        if latency is not None:
            self.latencies.append(latency)
        if detail:
            self.details[f"{outcome}: {detail}"] += 1


async def frame(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    """The next JSON frame within ``timeout`` seconds (asyncio.TimeoutError otherwise).

    Not ``ws.receive_json(timeout=...)``: aiohttp restarts that timeout after every ping it
    answers, and the gateway pings every 20 s, so a lost turn would never time out.
    """
    message = await asyncio.wait_for(ws.receive(), timeout)
    if message.type != aiohttp.WSMsgType.TEXT:
        raise ConnectionError(f"socket {message.type.name.lower()}")
    data = json.loads(message.data)
    return data if isinstance(data, dict) else {}


def is_apology(text: str) -> bool:
    return any(text.startswith(prefix) for prefix in APOLOGIES)


async def widget_conversation(session: aiohttp.ClientSession, url: str, visitor: str,
                              script: list[str], tally: Tally, turn_timeout: float) -> None:
    """One verified customer in the widget; a turn lasts from sending to ``handled``."""
    try:
        ws = await asyncio.wait_for(session.ws_connect(url, heartbeat=None), turn_timeout)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        tally.add("other", None, f"connect {type(exc).__name__}")
        return
    try:
        await ws.send_json({"type": "hello", "visitor": visitor, "token": None,
                            "language": "zh"})
        welcome = await frame(ws, turn_timeout)
        if welcome.get("type") != "welcome":
            tally.add("other", None, f"hello answered {welcome.get('type')}")
            return
        last_buttons: list[dict[str, str]] = []
        for line in script:
            outcome, buttons = await _widget_turn(ws, line, last_buttons, tally, turn_timeout)
            if outcome != "ok":
                return
            last_buttons = buttons or last_buttons
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError,
            ValueError) as exc:  # hello timed out, socket closed, a frame that is not JSON
        tally.add("other", None, f"socket {type(exc).__name__}")
    finally:
        await ws.close()


async def _widget_turn(ws: aiohttp.ClientWebSocketResponse, line: str,
                       last_buttons: list[dict[str, str]], tally: Tally,
                       turn_timeout: float) -> tuple[str, list[dict[str, str]]]:
    text, payload = line, None
    if line == "<button>":
        text, payload = ((last_buttons[0]["title"], last_buttons[0]["payload"])
                         if last_buttons else ("1", None))
    client_id = f"m-{uuid.uuid4()}"
    outgoing: dict[str, Any] = {"type": "message", "client_id": client_id, "text": text}
    if payload:
        outgoing["payload"] = payload
    buttons: list[dict[str, str]] = []
    apologised = refused = None
    started = time.perf_counter()
    deadline = started + turn_timeout
    await ws.send_json(outgoing)
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            tally.add("timeout", None)
            return "timeout", []
        try:
            reply = await frame(ws, left)
        except asyncio.TimeoutError:
            tally.add("timeout", None)
            return "timeout", []
        kind = reply.get("type")
        if kind == "message":
            buttons = reply.get("buttons") or buttons
            if is_apology(str(reply.get("text") or "")):
                apologised = "assistant apology"
        elif kind == "error" and reply.get("client_id") == client_id:
            refused = f"error {reply.get('code')}"
        elif kind == "handled" and reply.get("client_id") == client_id:
            latency = time.perf_counter() - started
            route = reply.get("route")
            if route == "fallback_ticket":
                tally.add("fallback", latency)
                return "fallback", buttons
            if refused or apologised or route in ("busy", "refused"):
                tally.add("apology", latency, refused or apologised or f"route {route}")
                return "apology", buttons
            if route != "rasa":
                tally.add("other", latency, f"route {route}")
                return "other", buttons
            tally.add("ok", latency)
            return "ok", buttons


async def rest_conversation(session: aiohttp.ClientSession, url: str, sender: str,
                            script: list[str], tally: Tally, turn_timeout: float) -> None:
    """One conversation over Rasa's REST channel (the stock bot): POST until the answers."""
    last: list[dict[str, Any]] = []
    for line in script:
        message = line
        if line == "<button>":
            buttons = [b for m in last for b in (m.get("buttons") or [])]
            message = buttons[0]["payload"] if buttons else "1"
        started = time.perf_counter()
        try:
            async with session.post(url, json={"sender": sender, "message": message},
                                    timeout=aiohttp.ClientTimeout(total=turn_timeout)) as response:
                body = await response.json(content_type=None) if response.status == 200 else None
                status = response.status
        except asyncio.TimeoutError:
            tally.add("timeout", None)
            return
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            tally.add("other", None, type(exc).__name__)
            return
        latency = time.perf_counter() - started
        if status != 200 or not isinstance(body, list):
            tally.add("other", latency, f"HTTP {status}")
            return
        tally.add("ok", latency)
        last = body


Conversation = Callable[[aiohttp.ClientSession, int, Tally], Awaitable[None]]


async def run_level(conversation: Conversation, concurrency: int, rounds: int,
                    first: int, between: Callable[[], None] | None = None) -> tuple[Tally, float]:
    """``rounds * concurrency`` conversations numbered from ``first``, ``concurrency`` of them
    in flight at every moment until the last has started: each of ``concurrency`` lanes starts
    the next conversation as soon as its own ends. Returns the tally and the level's wall time
    (to the last turn's end). ``between`` runs just before the first conversation (a CPU
    snapshot, after the client session is up).

    Waves (start ``concurrency``, wait for all of them, start the next) left the end of every
    wave with fewer conversations in flight than the level names while the slowest finished;
    a stack of several processes idled part of the machine there, a one-process stack hardly
    did. Lanes keep the level's concurrency; one tail is left, at the very end."""
    tally = Tally()
    numbers = iter(range(first, first + rounds * concurrency))  # shared: the next free number
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def lane() -> None:
            for k in numbers:
                await conversation(session, k, tally)

        if between is not None:
            between()
        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return tally, elapsed


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values, None without values."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summary(tally: Tally, elapsed: float) -> dict[str, Any]:
    ordered = sorted(tally.latencies)
    ok = tally.outcomes["ok"]
    ms = (lambda v: round(v * 1000, 1) if v is not None else None)
    return {
        "turns": sum(tally.outcomes.values()),
        "ok_turns": ok,
        "elapsed_s": round(elapsed, 3),
        "throughput": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": ms(statistics.median(ordered)) if ordered else None,
        "p95_ms": ms(percentile(ordered, 95)),
        "p99_ms": ms(percentile(ordered, 99)),
        "errors": {name: tally.outcomes[name] for name in OUTCOMES if name != "ok"},
        "error_details": dict(tally.details),
    }
