"""``python -m ticketing.web``: the desk web process (``KEFU_DESK_HOST`` / ``KEFU_DESK_PORT``)."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.settings import Settings, load_settings
from ticketing.conversations import wakeups
from ticketing.desk import facts, live_events, timer_index
from ticketing.web.app import create_app
from ticketing.web.warmup import warm_up


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the desk. Behind the proxy (docs/deploy.md) every connection comes
    from the proxy, so the person's address (sign-in lockout, audit) is taken from
    X-Forwarded-For, believed only from ``KEFU_DESK_TRUSTED_PROXIES``."""
    return {"host": settings.desk_host, "port": settings.desk_port, "log_level": "info",
            "proxy_headers": True, "forwarded_allow_ips": settings.desk_trusted_proxies}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    session_factory = make_session_factory(make_engine(settings.database_url),
                                           schedule=settings.schedule)
    filled = facts.backfill(session_factory)  # a database older than the reports' facts
    if filled:
        logging.getLogger(__name__).info("reports: facts computed for %d tickets", filled)
    redis_client = None
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                            socket_timeout=2, socket_connect_timeout=2)
        timer_index.install(session_factory, timer_index.RedisTimerIndex(redis_client))
        live_events.install(session_factory, redis_client)  # wakes every desk's live streams
        wakeups.install(session_factory, redis_client)  # agent replies reach customers at once
    app = create_app(settings=settings, session_factory=session_factory, redis=redis_client)
    warm_up(app.state.desk)  # connections, statements and templates before the first request
    uvicorn.run(app, **server_options(settings))


if __name__ == "__main__":
    main()
