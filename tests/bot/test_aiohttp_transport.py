"""bot/aiohttp_transport.py against real sockets: httpx's answers and errors, aiohttp's wire."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.aiohttp_transport import AiohttpTransport


async def _serving(routes: Callable[[web.Application], None],
                   scenario: Callable[[str], Awaitable[Any]]) -> Any:
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        return await scenario(url)
    finally:
        await runner.cleanup()


def test_a_call_goes_and_comes_back_as_httpx_would_make_it() -> None:
    peers: list[Any] = []

    async def webhook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        body = await request.json()
        return web.json_response([{"text": f"{body['message']} / {request.query['token']}"}],
                                 status=502 if body["message"] == "gone" else 200)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(),
                                     params={"token": "t0ken"}) as client:
            first = await client.post("/hook", json={"message": "你好"})
            assert first.status_code == 200 and first.json() == [{"text": "你好 / t0ken"}]
            assert first.headers["content-type"].startswith("application/json")
            second = await client.post("/hook", json={"message": "gone"})
            assert second.status_code == 502 and second.request.url.path == "/hook"

    asyncio.run(_serving(lambda app: app.router.add_post("/hook", webhook), scenario))
    assert len(peers) == 2 and peers[0] != peers[1]  # a new connection per call


def test_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=closed, transport=AiohttpTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post("/hook", json={})

    asyncio.run(scenario())


def test_a_server_gone_mid_call_and_a_slow_one_are_told_apart() -> None:
    async def vanish(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # the process died with the request read
        await asyncio.sleep(1)
        return web.Response()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    def routes(app: web.Application) -> None:
        app.router.add_post("/vanish", vanish)
        app.router.add_post("/slow", slow)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(),
                                     timeout=httpx.Timeout(0.3)) as client:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.post("/vanish", json={})
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/slow", json={})

    asyncio.run(_serving(routes, scenario))
