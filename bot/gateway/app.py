"""Assembling and running the gateway: database, Redis (optional), Rasa client, channels, HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from bot.gateway import conversation_lock, polling_lease
from bot.gateway.core import Gateway
from bot.gateway.delivery import Delivery
from bot.gateway.http import build_app
from bot.gateway.lanes import Lanes
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.replay import Replayer, replay_unhandled
from bot.gateway.settings import GatewaySettings
from bot.gateway.telegram import TelegramChannel
from bot.gateway.wakeups import WakeupListener
from bot.gateway.widget import WidgetChannel
from bot.rasa_client import AsyncRasaClient
from bot.rasa_config import client_token
from ticketing.conversations import wakeups
from ticketing.desk import live_events, timer_index
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.settings import Settings, dev_secret, load_settings, var_dir

log = logging.getLogger("kefu.gateway")
RECORD_AT_STOP = 5.0  # seconds a stopping gateway waits to record answers it already sent


class GatewayService:
    """Everything the gateway runs, started and stopped together."""

    def __init__(self, settings: GatewaySettings | None = None, app_settings: Settings | None = None,
                 *, session_factory: sessionmaker[Session] | None = None,
                 demo_page: bool | None = None) -> None:
        self.app_settings = app_settings or load_settings()
        settings = settings or GatewaySettings.from_environ()
        if not settings.widget_secret:
            settings = dataclasses.replace(settings, widget_secret=dev_secret("widget.secret"))
        self.settings = settings
        self._engine = None
        if session_factory is None:
            self._engine = make_engine(self.app_settings.database_url)
            session_factory = make_session_factory(self._engine,
                                                   schedule=self.app_settings.schedule)
        self.session_factory = session_factory
        # the demo sign-in page is for `make run`; shops turn it off (KEFU_DEMO_PAGE=off)
        self.demo_page = self.app_settings.demo_page if demo_page is None else demo_page
        self.redis: Any = None
        self._uninstall = None
        self.metrics = GatewayMetrics()
        self.rasa = AsyncRasaClient(settings.rasa_urls or settings.rasa_url,
                                    timeout=max(settings.rasa_timeout, 1.0) + 5,
                                    token=client_token(settings.rasa_token))
        self.gateway: Gateway | None = None
        self.telegram: TelegramChannel | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []  # replay, outbox wake-ups
        self._turn_lock: conversation_lock.TurnLock | None = None
        self._uninstall_wakeups = None
        self.port: int | None = None

    async def start(self) -> None:
        if self.app_settings.redis_url:
            import redis
            import redis.asyncio as aredis

            self.redis = aredis.Redis.from_url(self.app_settings.redis_url,
                                               socket_connect_timeout=1, socket_timeout=1)
            index = timer_index.RedisTimerIndex(redis.Redis.from_url(
                self.app_settings.redis_url, decode_responses=True, socket_timeout=1))
            self._uninstall = timer_index.install(self.session_factory, index)
            live_events.install(self.session_factory, index.client)  # desk pages see it live
            # rows queued here for a page open on another gateway: that one delivers at once
            self._uninstall_wakeups = wakeups.install(self.session_factory, index.client)
        # one turn per conversation across gateway processes (Redis, else PostgreSQL)
        self._turn_lock = conversation_lock.for_deployment(
            redis=self.redis, database_url=self.app_settings.database_url,
            ttl=self.settings.turn_lock_ttl, max_wait=self.settings.turn_lock_wait)
        limiter = RateLimiter(limit=self.settings.rate_limit, window=self.settings.rate_window,
                              redis=self.redis)
        gateway = Gateway(settings=self.settings, session_factory=self.session_factory,
                          rasa=self.rasa, limiter=limiter, metrics=self.metrics,
                          pii_key=self.app_settings.pii_key)
        gateway.lanes = Lanes(shared=self._turn_lock)
        self.gateway = gateway
        delivery = Delivery(gateway)
        widget = WidgetChannel(gateway)
        gateway.register(widget)
        if self.settings.telegram_token:
            lease = polling_lease.for_deployment(redis=self.redis,
                                                 database_url=self.app_settings.database_url,
                                                 ttl=self.settings.telegram_lease)
            self.telegram = TelegramChannel(gateway, attachments_dir=var_dir() / "attachments",
                                            lease=lease)
            gateway.register(self.telegram)
            await self.telegram.start()
        app = build_app(gateway, widget, self.telegram, redis=self.redis, demo_page=self.demo_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        self._delivery_task = asyncio.create_task(delivery.run(self._stopping))
        replayer = Replayer(gateway, interval=self.settings.replay_interval,
                            grace=self.settings.replay_grace,
                            grace_locked=self.settings.replay_grace_locked)
        self._background.append(asyncio.create_task(replayer.run(self._stopping)))
        if self.redis is not None:
            listener = WakeupListener(self.redis, delivery)
            self._background.append(asyncio.create_task(listener.run(self._stopping)))
        try:
            replayed = await replay_unhandled(gateway, unsure_until=self.settings.replay_grace)
            if replayed:
                log.warning("routed %d message(s) stored before a restart but never answered",
                            replayed)
        except Exception:
            log.exception("could not replay unhandled messages; they stay in the inbound log")
        log.info("gateway on http://%s:%s (telegram: %s)", self.settings.host, self.port,
                 "webhook" if self.settings.telegram_webhook_url
                 else "polling" if self.telegram else "off")

    async def stop(self) -> None:
        self._stopping.set()
        if self._delivery_task is not None:
            await asyncio.gather(self._delivery_task, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.telegram is not None:
            await self.telegram.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.gateway is not None:  # answers sent: record them before the pool goes
            await self.gateway.settle_deliveries(RECORD_AT_STOP)
        await self.rasa.aclose()
        if self._turn_lock is not None:
            await self._turn_lock.close()
        if self._uninstall_wakeups is not None:
            self._uninstall_wakeups()
        if self.redis is not None:
            await self.redis.aclose()
        if self._uninstall is not None:
            self._uninstall()
        if self._engine is not None:
            self._engine.dispose()

    async def wait(self) -> None:
        await self._stopping.wait()


async def serve() -> None:
    service = GatewayService()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, service._stopping.set)
    await service.start()
    print(f"gateway ready on http://{service.settings.host}:{service.port}", flush=True)
    try:
        await service.wait()
    finally:
        await service.stop()
