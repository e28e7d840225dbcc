"""Several Rasa servers: each conversation keeps its server while it is up, moves only while it
is down, and comes back after the cooldown; a slow turn is not an outage.

The servers are fakes behind ``httpx.MockTransport`` (one transport, told apart by port), plus
one test over real sockets: a closed port and an aiohttp server.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.rasa_client import AsyncRasaClient, RasaClient
from bot.rasa_pool import RasaPool, Verdict, judge_error, judge_status, ranking

URLS = ["http://127.0.0.1:5101", "http://127.0.0.1:5102", "http://127.0.0.1:5103"]
IDS = [f"widget:v-{i:05d}" for i in range(1000)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeCluster:
    """Rasa servers by URL; ``state[url]`` says how each one behaves right now."""

    state: dict[str, str] = field(default_factory=lambda: {url: "up" for url in URLS})
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (server, path, sender)

    def handler(self, request: httpx.Request) -> httpx.Response:
        server = f"http://{request.url.host}:{request.url.port}"
        path = request.url.path
        sender = _sender(request)
        behaviour = self.state[server]
        if behaviour == "refused":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        self.calls.append((server, path, sender))
        if behaviour == "reset":
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        if behaviour == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        if behaviour.isdigit():
            return httpx.Response(int(behaviour), json={"status": "failure", "code": behaviour})
        if path.endswith("/trigger_intent"):
            return httpx.Response(200, json={"messages": [{"text": f"csat from {server}"}]})
        return httpx.Response(200, json=[{"recipient_id": sender, "text": f"hi from {server}"}])

    def served(self, sender: str) -> list[str]:
        return [server for server, _path, who in self.calls if who == sender]


def _sender(request: httpx.Request) -> str:
    if request.url.path.startswith("/conversations/"):
        return request.url.path.split("/")[2]
    return str(json.loads(request.content)["sender"])


def _client(cluster: FakeCluster, clock: Clock) -> AsyncRasaClient:
    return AsyncRasaClient(URLS, token="t0ken", pool=RasaPool(URLS, clock=clock),
                           transport=httpx.MockTransport(cluster.handler))


def _run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def _homed_on(server: str, count: int = 5) -> list[str]:
    return [c for c in IDS if ranking(URLS, c)[0] == server][:count]


# -- routing -------------------------------------------------------------------------------


def test_assignment_is_stable_across_processes_and_url_order() -> None:
    first = RasaPool(URLS)
    second = RasaPool([URLS[2] + "/", URLS[0], "HTTP://127.0.0.1:5102/"])
    assert [first.home(c) for c in IDS] == [second.home(c) for c in IDS]
    assert first.home("telegram:12345") == first.home("telegram:12345")


def test_conversations_spread_evenly_over_the_servers() -> None:
    counts = Counter(RasaPool(URLS).home(c) for c in IDS)
    assert set(counts) == set(URLS)
    assert all(270 <= n <= 400 for n in counts.values()), counts


def test_adding_a_server_moves_only_the_conversations_it_takes() -> None:
    before = RasaPool(URLS[:2])
    after = RasaPool(URLS)
    moved = [c for c in IDS if before.home(c) != after.home(c)]
    assert all(after.home(c) == URLS[2] for c in moved)
    assert 250 <= len(moved) <= 420


def test_a_conversation_talks_to_its_own_server_for_every_call() -> None:
    cluster, clock = FakeCluster(), Clock()

    async def scenario() -> None:
        client = _client(cluster, clock)
        for conversation in IDS[:30]:
            await client.send(conversation, "hello")
            await client.resume(conversation)
            await client.trigger(conversation, "EXTERNAL_csat_request")
        await client.aclose()

    _run(scenario)
    for conversation in IDS[:30]:
        assert cluster.served(conversation) == [ranking(URLS, conversation)[0]] * 3


# -- a server goes down ---------------------------------------------------------------------


def test_only_the_dead_servers_conversations_move_and_they_come_back() -> None:
    cluster, clock = FakeCluster(), Clock()
    dead = URLS[1]
    sample = IDS[:200]

    async def scenario() -> dict[str, list[str]]:
        client = _client(cluster, clock)
        where: dict[str, list[str]] = {}
        cluster.state[dead] = "refused"
        for conversation in sample:
            answer = await client.send(conversation, "where is my order")
            where[conversation] = [answer[0]["text"].rsplit(" ", 1)[1]]
        assert not client.pool.snapshot()[1]["up"]
        clock.now += 3  # still cooling down: not even tried
        cluster.calls.clear()
        await client.send(_homed_on(dead)[0], "again")
        assert cluster.calls and dead not in [server for server, *_ in cluster.calls]
        cluster.state[dead] = "up"
        clock.now += 10  # cooldown over: its conversations go home
        for conversation in sample:
            answer = await client.send(conversation, "and now?")
            where[conversation].append(answer[0]["text"].rsplit(" ", 1)[1])
        assert all(entry["up"] for entry in client.pool.snapshot())
        await client.aclose()
        return where

    where = _run(scenario)
    for conversation in sample:
        order = ranking(URLS, conversation)
        during, after = where[conversation]
        assert after == order[0]
        assert during == (order[1] if order[0] == dead else order[0]), conversation
    assert any(ranking(URLS, c)[0] == dead for c in sample)


def test_resume_and_trigger_follow_the_messages_during_failover() -> None:
    cluster, clock = FakeCluster(), Clock()
    conversation = _homed_on(URLS[0])[0]
    second = ranking(URLS, conversation)[1]
    cluster.state[URLS[0]] = "refused"

    async def scenario() -> list[dict[str, Any]]:
        client = _client(cluster, clock)
        await client.send(conversation, "hi")
        await client.resume(conversation)
        said = await client.trigger(conversation, "EXTERNAL_csat_request", {"ticket": 7})
        await client.aclose()
        return said

    said = _run(scenario)
    assert cluster.served(conversation) == [second] * 3
    assert said == [{"text": f"csat from {second}"}]


def test_cooldown_doubles_while_a_server_keeps_failing_then_resets() -> None:
    clock = Clock()
    pool = RasaPool(URLS, clock=clock)
    pool.record(URLS[0], Verdict.DOWN_UNSENT, "ConnectError")
    assert pool.snapshot()[0]["retry_in"] == 5.0
    clock.now += 5
    pool.record(URLS[0], Verdict.DOWN_UNSENT, "ConnectError")
    assert pool.snapshot()[0]["retry_in"] == 10.0
    for _ in range(5):
        pool.record(URLS[0], Verdict.DOWN_UNSENT, "ConnectError")
    assert pool.snapshot()[0]["retry_in"] == 30.0  # capped
    pool.record(URLS[0], Verdict.UP)
    assert pool.snapshot()[0] == {"url": URLS[0], "up": True, "failures": 0, "retry_in": 0.0,
                                  "last_error": None}


def test_when_every_server_is_down_each_is_still_tried_once() -> None:
    cluster, clock = FakeCluster(), Clock()
    cluster.state = {url: "refused" for url in URLS}

    async def scenario() -> None:
        client = _client(cluster, clock)
        with pytest.raises(httpx.ConnectError):  # an httpx.HTTPError: the gateway apologises
            await client.send("widget:v-1", "hi")
        assert not any(entry["up"] for entry in client.pool.snapshot())
        cluster.state[URLS[2]] = "up"  # back before its cooldown ended
        answer = await client.send("widget:v-1", "hi")
        assert answer[0]["text"] == f"hi from {URLS[2]}"
        await client.aclose()

    _run(scenario)


# -- what is, and is not, "down" ------------------------------------------------------------


@pytest.mark.parametrize(("behaviour", "error", "down"), [
    ("slow", httpx.ReadTimeout, False),  # a slow turn is not an outage
    ("500", httpx.HTTPStatusError, False),  # Rasa's own error: it is up
    ("503", httpx.HTTPStatusError, False),  # Sanic's response timeout: a slow turn
    ("401", httpx.HTTPStatusError, False),  # wrong token: configuration, not health
    ("reset", httpx.RemoteProtocolError, True),  # died mid-turn: down, but not retried
    ("502", httpx.HTTPStatusError, True),  # a proxy lost it: down, but not retried
])
def test_failures_after_the_request_went_out_are_never_repeated_elsewhere(
        behaviour: str, error: type[Exception], down: bool) -> None:
    cluster, clock = FakeCluster(), Clock()
    conversation = _homed_on(URLS[2])[0]
    cluster.state[URLS[2]] = behaviour

    async def scenario() -> None:
        client = _client(cluster, clock)
        with pytest.raises(error):
            await client.send(conversation, "a long question")
        assert client.pool.snapshot()[2]["up"] is (not down)
        await client.aclose()

    _run(scenario)
    assert cluster.served(conversation) == [URLS[2]]  # once, nowhere else: never answered twice


def test_verdicts() -> None:
    request = httpx.Request("POST", URLS[0])
    assert judge_error(httpx.ConnectError("refused", request=request)) is Verdict.DOWN_UNSENT
    assert judge_error(httpx.ConnectTimeout("slow", request=request)) is Verdict.DOWN_UNSENT
    assert judge_error(httpx.ReadError("reset", request=request)) is Verdict.DOWN_SENT
    assert judge_error(httpx.ReadTimeout("slow", request=request)) is Verdict.UP
    assert judge_error(httpx.PoolTimeout("busy", request=request)) is Verdict.UP
    assert [judge_status(s) for s in (200, 409, 500, 502, 503, 504)] == [
        Verdict.UP, Verdict.UP, Verdict.UP, Verdict.DOWN_SENT, Verdict.UP, Verdict.UP]


def test_a_cancelled_slow_call_says_nothing_about_health() -> None:
    clock = Clock()

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=[])

    async def scenario() -> None:
        client = AsyncRasaClient(URLS, pool=RasaPool(URLS, clock=clock),
                                 transport=httpx.MockTransport(slow))
        with pytest.raises(asyncio.TimeoutError):  # what the gateway's rasa_timeout does
            await asyncio.wait_for(client.send("widget:v-1", "hi"), timeout=0.05)
        assert all(entry["up"] for entry in client.pool.snapshot())
        await client.aclose()

    _run(scenario)


# -- the synchronous client and the one-server form ----------------------------------------


def test_sync_client_fails_over_the_same_way() -> None:
    cluster, clock = FakeCluster(), Clock()
    conversation = _homed_on(URLS[1])[0]
    cluster.state[URLS[1]] = "refused"
    with RasaClient(URLS, pool=RasaPool(URLS, clock=clock),
                    transport=httpx.MockTransport(cluster.handler)) as client:
        client.send(conversation, "hi")
        client.resume(conversation)
    assert cluster.served(conversation) == [ranking(URLS, conversation)[1]] * 2


def test_one_url_is_a_pool_of_one_that_is_always_tried() -> None:
    cluster, clock = FakeCluster(), Clock()
    cluster.state[URLS[0]] = "refused"

    async def scenario() -> None:
        client = AsyncRasaClient(URLS[0], pool=RasaPool([URLS[0]], clock=clock),
                                 transport=httpx.MockTransport(cluster.handler))
        with pytest.raises(httpx.ConnectError):
            await client.send("widget:v-1", "hi")
        cluster.state[URLS[0]] = "up"
        assert (await client.send("widget:v-1", "hi"))[0]["text"] == f"hi from {URLS[0]}"
        await client.aclose()

    _run(scenario)


def test_failover_over_real_sockets() -> None:
    """A closed port is a real ``ConnectError``; the conversation's next server answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        assert request.query.get("token") == "t0ken"
        return web.json_response([{"recipient_id": body["sender"], "text": "live"}])

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        live = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        urls = [closed, live]
        conversation = next(c for c in IDS if ranking(urls, c)[0] == closed)
        client = AsyncRasaClient(urls, token="t0ken")
        try:
            assert (await client.send(conversation, "hi"))[0]["text"] == "live"
            assert [entry["up"] for entry in client.pool.snapshot()] == [False, True]
        finally:
            await client.aclose()
            await runner.cleanup()

    _run(scenario)
