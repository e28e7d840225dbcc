"""The widget's WebSocket handshake and frames, in process (``bot/gateway/widget.py``).

Issue 13: a malformed token (a non-ASCII signature) crashed the handshake instead of making an
anonymous visitor; a foreign page could open the socket; a poison message answered
``unavailable``, which the widget retries forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient, TestServer

from bot import widget_token
from bot.gateway import origins
from bot.gateway.core import Gateway
from bot.gateway.delivery import Delivery
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.settings import GatewaySettings
from bot.gateway.widget import WidgetChannel
from ticketing.core.errors import ConfigurationError
from tests.bot.test_gateway_core import ScriptedRasa
from tests.conftest import TEST_KEY

SECRET = "test-secret"
VISITOR = "v-0123456789ab"


def _run(session_factory, scenario: Callable[[TestClient], Awaitable[Any]],
         prepare: Callable[[Gateway], None] | None = None, **settings: Any) -> Any:
    async def main() -> Any:
        gateway = Gateway(settings=GatewaySettings(widget_secret=SECRET, rate_limit=100,
                                                   rasa_timeout=2, **settings),
                          session_factory=session_factory, rasa=ScriptedRasa(),  # type: ignore[arg-type]
                          limiter=RateLimiter(limit=100, window=60), metrics=GatewayMetrics(),
                          pii_key=TEST_KEY)
        widget = WidgetChannel(gateway)
        gateway.register(widget)
        Delivery(gateway)
        if prepare is not None:
            prepare(gateway)
        app = web.Application()
        app.router.add_get("/ws", widget.handle)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)
    return asyncio.run(main())


async def _hello(client: TestClient, token: Any, *, origin: str | None = None) -> dict[str, Any]:
    headers = {"Origin": origin} if origin else None
    ws = await client.ws_connect("/ws", headers=headers)
    await ws.send_json({"type": "hello", "visitor": VISITOR, "token": token, "language": "en"})
    welcome = await ws.receive_json(timeout=10)
    await ws.close()
    return welcome


@pytest.mark.parametrize("token", [
    "7.9999999999." + "é" * 64,  # non-ASCII signature: compare_digest raised TypeError
    "²." + "9" * 10 + "." + "a" * 64,  # "²".isdigit() is True, int("²") raises
    "7.9999999999." + "\ud800" * 64,
    "٧.9999999999." + "a" * 64,
    12345,
    ["7", "9", "a"],
])
def test_a_malformed_token_makes_an_anonymous_visitor(session_factory, token: Any) -> None:
    if isinstance(token, str):
        assert widget_token.verify(token, secret=SECRET) is None
    welcome = _run(session_factory, lambda client: _hello(client, token))
    assert welcome["type"] == "welcome" and welcome["verified"] is False
    assert welcome["conversation"] == f"widget:{VISITOR}"


def test_a_valid_token_still_verifies(make, session, session_factory) -> None:
    customer = make.customer()
    session.commit()
    token = widget_token.sign(customer.id, secret=SECRET)
    welcome = _run(session_factory, lambda client: _hello(client, token))
    assert welcome["verified"] is True and welcome["conversation"] == f"widget:c-{customer.id}"


def test_a_foreign_origin_is_refused_before_the_upgrade(session_factory) -> None:
    async def scenario(client: TestClient) -> list[Any]:
        host = f"http://{client.server.host}:{client.server.port}"
        results: list[Any] = []
        for origin in ("https://evil.example", "null", f"http://{client.server.host}:1234",
                       host, None, "http://localhost:3000"):
            try:
                welcome = await _hello(client, None, origin=origin)
                results.append(welcome["type"])
            except WSServerHandshakeError as exc:
                results.append(exc.status)
        return results

    # unset: the gateway's own host (any port), no Origin (not a browser), localhost in dev
    assert _run(session_factory, scenario) == [403, 403, "welcome", "welcome", "welcome",
                                               "welcome"]
    # listed: those, and the gateway's own host; localhost pages are no longer a given
    assert _run(session_factory, scenario, widget_origins=("https://evil.example",)) == [
        "welcome", 403, "welcome", "welcome", "welcome", 403]


def test_origin_settings() -> None:
    settings = GatewaySettings.from_environ(
        {"KEFU_WIDGET_ORIGINS": "https://Shop.Example, https://m.shop.example:443/,"
                                "http://127.0.0.1:8080"})
    assert settings.widget_origins == ("https://shop.example", "https://m.shop.example",
                                       "http://127.0.0.1:8080")
    assert GatewaySettings.from_environ({}).widget_origins == ()
    assert GatewaySettings.from_environ({"KEFU_WIDGET_ORIGINS": "*"}).widget_origins == ("*",)
    with pytest.raises(ConfigurationError):
        GatewaySettings.from_environ({"KEFU_WIDGET_ORIGINS": "shop.example"})
    assert origins.allowed("https://shop.example", host="gw.example",
                           configured=settings.widget_origins)
    assert not origins.allowed("https://shop.example.evil.com", host="gw.example",
                               configured=settings.widget_origins)
    assert origins.allowed("https://anything.example", host="gw.example", configured=("*",))


def test_a_poison_message_is_refused_with_an_error_the_widget_does_not_retry(
        session_factory) -> None:
    async def scenario(client: TestClient) -> list[dict[str, Any]]:
        return await _one_turn(
            client, '{"type": "message", "client_id": "m-1", "text": "\\u0000\\u0001"}')

    frames = _run(session_factory, scenario)
    [error] = [f for f in frames if f["type"] == "error"]
    # widget.js retries only "unavailable"; anything else is refused for good
    assert error["code"] == "invalid" and error["client_id"] == "m-1"
    assert "could not be read" in error["text"]


async def _one_turn(client: TestClient, message: str | dict[str, Any] | None = None, *,
                    first: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Hello, the raw ``first`` frames, then one message (a frame or its JSON text; "hello"
    unless given); every frame up to its ``handled`` (10 s at most each)."""
    ws = await client.ws_connect("/ws", max_msg_size=0)
    await ws.send_json({"type": "hello", "visitor": VISITOR, "language": "en"})
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    for raw in first:
        await ws.send_str(raw)
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_json(message or {"type": "message", "client_id": "m-1", "text": "hello"})
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "handled":
        frames.append(await ws.receive_json(timeout=10))
    await ws.close()
    return frames


def test_frames_are_read_while_what_was_owed_is_still_going_out(session_factory) -> None:
    def slow_flush(gateway: Gateway) -> None:
        deliver = gateway.deliver_now
        assert deliver is not None

        async def stuck_when_flushing(conversation: str, leased: Any = None, **kw: Any) -> None:
            if leased is None:  # the page's flush on connecting: stuck for a long while
                await asyncio.sleep(60)
            await deliver(conversation, leased, **kw)
        gateway.deliver_now = stuck_when_flushing

    frames = _run(session_factory, _one_turn, prepare=slow_flush)
    assert [f["type"] for f in frames][0] == "received"
    assert frames[-1] == {"type": "handled", "client_id": "m-1", "route": "rasa"}


def test_a_turn_that_breaks_unexpectedly_says_unavailable_so_the_page_retries(
        session_factory) -> None:
    def broken(gateway: Gateway) -> None:
        async def receive(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("a bug of ours")
        gateway.receive = receive  # type: ignore[method-assign]

    frames = _run(session_factory, _one_turn, prepare=broken)
    [error] = [f for f in frames if f["type"] == "error"]
    assert error["code"] == "unavailable" and error["client_id"] == "m-1"
    assert frames[-1] == {"type": "handled", "client_id": "m-1", "route": "unavailable"}


def test_a_frame_nested_too_deep_for_the_parser_is_a_bad_frame(session_factory) -> None:
    """``[[[[…`` 60,000 deep raised RecursionError out of the frame reader (the socket's
    handler crashed); it is a frame that cannot be read, like any other, and the socket still
    serves the next message."""
    async def scenario(client: TestClient) -> list[dict[str, Any]]:
        return await _one_turn(client, first=("[" * 60_000,))

    frames = _run(session_factory, scenario)
    assert frames[0]["type"] == "error" and frames[0]["code"] == "bad_frame"
    assert any(f["type"] == "message" for f in frames[1:])


def test_a_message_of_a_whole_frame_of_letters_is_refused_as_too_long(session_factory) -> None:
    """60,000 letters without a digit: refused as too long, in the customer's language, with
    nothing stored; reading its language looks at the first ``max_chars`` only (the number
    pattern that looked at all of it took seconds of the event loop)."""
    async def scenario(client: TestClient) -> list[dict[str, Any]]:
        return await _one_turn(client, {"type": "message", "client_id": "m-3",
                                        "text": "a" * 60_000})

    frames = _run(session_factory, scenario)
    [error] = [f for f in frames if f["type"] == "error"]
    assert error["code"] == "too_long" and error["client_id"] == "m-3"
