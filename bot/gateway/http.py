"""The gateway's HTTP surface: demo page, widget files, WebSocket, health, metrics, webhook."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy import text

from bot import widget_token
from bot.gateway.core import Gateway
from bot.gateway.telegram import TelegramChannel
from bot.gateway.widget import WidgetChannel
from ticketing.core.models import Customer

STATIC = Path(__file__).resolve().parent.parent / "widget" / "static"
SIGNED_IN = ("已登录：{name} / Signed in: {name}", "未登录 / Not signed in")
DEMO_TOKEN_TTL = 12 * 3600


def build_app(gateway: Gateway, widget: WidgetChannel, telegram: TelegramChannel | None,
              *, redis: Any = None, demo_page: bool = True) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def index(request: web.Request) -> web.Response:
        if not demo_page:
            raise web.HTTPNotFound()
        language = "en" if request.query.get("lang", "").lower().startswith("en") else "zh"
        token, label = "", SIGNED_IN[1]
        raw = request.query.get("customer", "")
        if raw.isdigit() and gateway.settings.widget_secret:
            customer = await gateway.db(lambda s: s.get(Customer, int(raw)))
            if customer is not None:
                token = widget_token.sign(customer.id, secret=gateway.settings.widget_secret,
                                          ttl=DEMO_TOKEN_TTL)
                label = SIGNED_IN[0].format(name=customer.name)
        page = (STATIC / "demo.html").read_text(encoding="utf-8")
        page = (page.replace("__KEFU_TOKEN__", html.escape(token))
                .replace("__KEFU_LANG__", language)
                .replace("__KEFU_SIGNED_IN__", html.escape(label)))
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    def static(name: str, content_type: str):
        async def handler(_request: web.Request) -> web.Response:
            return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                                charset="utf-8", headers={"Cache-Control": "no-cache"})
        return handler

    async def health(_request: web.Request) -> web.Response:
        checks = await _checks(gateway, redis, telegram)
        status = "ok" if all(v in ("ok", "off") for v in checks.values()) else "degraded"
        if checks["database"] != "ok":
            status = "down"
        return web.json_response({"status": status, "checks": checks},
                                 status=200 if status != "down" else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=gateway.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def telegram_webhook(request: web.Request) -> web.Response:
        if telegram is None:
            raise web.HTTPNotFound()
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if not telegram.accepts(secret):  # before reading a stranger's body
            raise web.HTTPForbidden()
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: a body nested too deep
            raise web.HTTPBadRequest() from None
        status = await telegram.webhook(body, secret)
        return web.Response(status=status)

    app.router.add_get("/", index)
    app.router.add_get("/widget.js", static("widget.js", "application/javascript"))
    app.router.add_get("/widget.css", static("widget.css", "text/css"))
    app.router.add_get("/ws", widget.handle)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/telegram/webhook", telegram_webhook)
    return app


async def _checks(gateway: Gateway, redis: Any, telegram: TelegramChannel | None) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(gateway.db(lambda s: s.execute(text("SELECT 1"))), timeout=3)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if redis is None:
        checks["redis"] = "off"
    else:
        try:
            await asyncio.wait_for(redis.ping(), timeout=1)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    checks["rasa"] = await _rasa_check(gateway.settings.rasa_urls or (gateway.settings.rasa_url,))
    if telegram is None:
        checks["telegram"] = "off"
    else:
        app = telegram.application
        checks["telegram"] = "ok" if app is not None and app.running else "stopped"
    return checks


async def _rasa_check(urls: tuple[str, ...]) -> str:
    """"ok" when every Rasa server answers; else what failed, e.g. "1/2 down: ConnectError"."""
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=2) as client:
        for url in urls:
            try:
                response = await client.get(url + "/")
                if response.status_code != 200:
                    failures.append(f"http {response.status_code}")
            except Exception as exc:
                failures.append(type(exc).__name__)
    if not failures:
        return "ok"
    if len(urls) == 1:
        return failures[0] if failures[0].startswith("http") else f"error: {failures[0]}"
    return f"{len(failures)}/{len(urls)} down: {', '.join(sorted(set(failures)))}"
