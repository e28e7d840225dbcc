"""Which Rasa server a conversation talks to, and which servers are down right now.

Several Rasa servers share one Redis tracker and lock store, so any of them can answer any
conversation; keeping a conversation on one server still matters (its lock, its warm caches,
no two servers racing on one tracker). Rendezvous (highest-random-weight) hashing gives every
conversation its own ranking of the servers: it talks to the first one that is up. A server's
death moves only its own conversations (each to its next server), and they come back when it
does; the other servers' conversations never move. The ranking is a hash of the server's URL
and the conversation id, so every gateway process computes the same one without talking to
the others, whatever order the URLs are listed in.

"Down" means the server could not be reached, not that it was slow or said no:

- connection refused / connect timeout: the request never reached Rasa. Down, and the call
  moves to the conversation's next server at once (nothing can be answered twice);
- the connection broke after the request went out (reset, closed without an answer) or a
  proxy in front answered 502: down, but the call is *not* repeated elsewhere, because Rasa may
  have taken the turn already; the caller apologises and opens a ticket as for any failure;
- a read timeout (a slow turn), 503 (Sanic's own response timeout), 504, Rasa's own errors
  (500 with its JSON error body, 4xx such as 401 for a wrong token): the server is up.

A down server is left alone for a short cooldown (5 s, doubling while it keeps failing, at
most 30 s); after that the next call of one of its conversations tries it again, and the first
answer brings it back. When every server is down, calls still try them all in order: a cooldown
is a guess, never a reason to refuse a customer without trying.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

log = logging.getLogger("kefu.rasa")

BASE_COOLDOWN = 5.0
MAX_COOLDOWN = 30.0


class Verdict(enum.Enum):
    """What one call says about the server that handled it."""

    UP = "up"  # answered (even with an error of its own) or merely slow
    DOWN_UNSENT = "down_unsent"  # unreachable before the request went out: try the next server
    DOWN_SENT = "down_sent"  # gone after the request went out: do not repeat it elsewhere


def judge_error(error: Exception) -> Verdict:
    """The verdict of a call that raised ``error`` instead of answering."""
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Verdict.DOWN_UNSENT
    if isinstance(error, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
        return Verdict.DOWN_SENT
    return Verdict.UP  # timeouts of a slow turn, pool timeouts, our own mistakes


def judge_status(status: int) -> Verdict:
    """The verdict of a call answered with HTTP ``status``.

    Only 502 says "the server behind this proxy is gone"; 503 is also what Sanic answers when
    a turn outlives Rasa's ``--response-timeout``, i.e. a slow turn, and 504 is a slow turn
    seen by a proxy.
    """
    return Verdict.DOWN_SENT if status == 502 else Verdict.UP


def normalise_url(url: str) -> str:
    """The form of a server URL that is hashed: every gateway must agree on it."""
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return str(parsed.copy_with(query=None, fragment=None)).rstrip("/")


def _weight(server: str, conversation: str) -> int:
    digest = hashlib.blake2b(f"{server}\n{conversation}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranking(servers: Sequence[str], conversation: str) -> list[str]:
    """The servers in ``conversation``'s order of preference (rendezvous hashing)."""
    return sorted(servers, key=lambda server: (_weight(server, conversation), server),
                  reverse=True)


@dataclass
class ServerHealth:
    """One server as this process sees it."""

    url: str
    down_until: float = 0.0  # monotonic time; 0 = up
    failures: int = 0  # consecutive failed calls
    last_error: str | None = None

    def is_up(self, now: float) -> bool:
        return now >= self.down_until


class RasaPool:
    """Rendezvous routing plus a small health record per server; no I/O of its own.

    Thread-safe, so the synchronous client may be shared by threads; the asynchronous one
    calls it from one event loop.
    """

    def __init__(self, urls: Sequence[str], *, base_cooldown: float = BASE_COOLDOWN,
                 max_cooldown: float = MAX_COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        servers = list(dict.fromkeys(normalise_url(url) for url in urls))
        if not servers:
            raise ValueError("a Rasa pool needs at least one server")
        self.servers: tuple[str, ...] = tuple(servers)
        self._health = {url: ServerHealth(url) for url in servers}
        self._base = base_cooldown
        self._max = max_cooldown
        self._clock = clock
        self._lock = threading.Lock()

    def home(self, conversation: str) -> str:
        """The server ``conversation`` belongs to when every server is up."""
        return ranking(self.servers, conversation)[0]

    def candidates(self, conversation: str) -> list[str]:
        """Where to try ``conversation``'s call, in order: up servers first, by its ranking."""
        order = ranking(self.servers, conversation)
        with self._lock:
            now = self._clock()
            up = [s for s in order if self._health[s].is_up(now)]
        return up + [s for s in order if s not in up]

    def record(self, server: str, verdict: Verdict, detail: str = "") -> None:
        """Update ``server``'s health after a call."""
        with self._lock:
            health = self._health[server]
            if verdict is Verdict.UP:
                if health.failures:
                    log.info("rasa server %s answers again", server)
                health.failures, health.down_until, health.last_error = 0, 0.0, None
                return
            health.failures += 1
            cooldown = min(self._base * 2 ** (health.failures - 1), self._max)
            health.down_until = self._clock() + cooldown
            health.last_error = detail or verdict.value
            first = health.failures == 1
        log.log(logging.WARNING if first else logging.DEBUG,
                "rasa server %s is down (%s): its conversations go elsewhere for %.0f s",
                server, detail or verdict.value, cooldown)

    def snapshot(self) -> list[dict[str, object]]:
        """Every server's health, for a health page or a log line."""
        with self._lock:
            now = self._clock()
            return [{"url": h.url, "up": h.is_up(now), "failures": h.failures,
                     "retry_in": max(0.0, round(h.down_until - now, 1)),
                     "last_error": h.last_error} for h in self._health.values()]
