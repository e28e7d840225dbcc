"""The gateway's configuration, from ``KEFU_*`` environment variables (see README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.gateway.origins import normalize as normalize_origin
from bot.rasa_config import RasaAccess
from ticketing.core.errors import ConfigurationError


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number") from exc
    if value != value or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative number")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """KEFU_WIDGET_ORIGINS: "https://shop.example, https://m.shop.example" (or "*")."""
    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        origin = "*" if item == "*" else normalize_origin(item)
        if origin is None:
            raise ConfigurationError(f"KEFU_WIDGET_ORIGINS: {item!r} is not an origin "
                                     "(scheme://host[:port])")
        found.append(origin)
    return tuple(found)


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    rasa_url: str = "http://127.0.0.1:5005"  # the first of rasa_urls (health check)
    rasa_urls: tuple[str, ...] = ()  # KEFU_RASA_URLS (bot.rasa_pool); () = just rasa_url
    rasa_token: str | None = None  # KEFU_RASA_TOKEN; None = the development token in var/
    rasa_timeout: float = 30.0  # seconds before an answer counts as "too slow": apology + ticket
    max_chars: int = 4000
    nlu_max_chars: int = 1000  # KEFU_NLU_MAX_CHARS: what of a message Rasa reads (all stored)
    max_payload_chars: int = 512  # KEFU_MAX_PAYLOAD_CHARS: a longer button payload is refused
    rasa_concurrency: int = 16  # KEFU_RASA_CONCURRENCY: turns in Rasa at once (admission.py)
    rasa_anonymous_concurrency: int = 6  # KEFU_RASA_ANONYMOUS_CONCURRENCY: anonymous share
    widget_origins: tuple[str, ...] = ()  # KEFU_WIDGET_ORIGINS; () = same host (origins.py)
    rate_limit: int = 20  # messages per conversation per window
    rate_window: float = 60.0
    outbox_interval: float = 0.5  # seconds between outbox polls
    lease_seconds: float = 30.0
    # several gateway processes (docs/deploy.md): the turn lock, replay of interrupted turns,
    # the Telegram polling lease
    turn_lock_ttl: float = 10.0  # seconds a killed holder keeps a conversation's turn (renewed)
    turn_lock_wait: float = 75.0  # longest wait for a turn before going ahead without the lock
    replay_interval: float = 5.0  # seconds between passes over stored-but-unrouted messages
    replay_grace: float = 35.0  # a message unrouted this long was interrupted (> rasa_timeout)
    replay_grace_locked: float = 10.0  # the same, known for sure while the turn lock is held
    widget_handover: float = 10.0  # seconds a widget row waits for the gateway with the socket
    telegram_lease: float = 15.0  # seconds the Telegram polling lease lasts unless renewed
    widget_secret: str | None = None
    telegram_token: str | None = None
    telegram_base_url: str | None = None  # tests point this at a fake Bot API server
    telegram_base_file_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if environ is None else environ
        rasa = RasaAccess.from_environ(env)
        webhook_url = env.get("KEFU_TELEGRAM_WEBHOOK_URL") or None
        secret = env.get("KEFU_TELEGRAM_WEBHOOK_SECRET") or None
        if webhook_url and not secret:
            raise ConfigurationError("KEFU_TELEGRAM_WEBHOOK_URL needs KEFU_TELEGRAM_WEBHOOK_SECRET")
        if secret and not all(c.isalnum() or c in "_-" for c in secret):
            raise ConfigurationError("KEFU_TELEGRAM_WEBHOOK_SECRET: only A-Z, a-z, 0-9, _ and -")
        return cls(
            host=env.get("KEFU_GATEWAY_HOST", "127.0.0.1"),
            port=int(_number(env, "KEFU_GATEWAY_PORT", 8000)),
            rasa_url=rasa.urls[0],
            rasa_urls=rasa.urls,
            rasa_token=rasa.token,
            rasa_timeout=_number(env, "KEFU_RASA_TIMEOUT", 30.0),
            max_chars=int(_number(env, "KEFU_MAX_MESSAGE_CHARS", 4000)),
            nlu_max_chars=int(_number(env, "KEFU_NLU_MAX_CHARS", 1000)),
            max_payload_chars=int(_number(env, "KEFU_MAX_PAYLOAD_CHARS", 512)),
            rasa_concurrency=max(1, int(_number(env, "KEFU_RASA_CONCURRENCY", 16))),
            rasa_anonymous_concurrency=max(
                1, int(_number(env, "KEFU_RASA_ANONYMOUS_CONCURRENCY", 6))),
            widget_origins=_origins(env.get("KEFU_WIDGET_ORIGINS", "")),
            rate_limit=int(_number(env, "KEFU_RATE_LIMIT_PER_MINUTE", 20)),
            rate_window=60.0,
            outbox_interval=_number(env, "KEFU_OUTBOX_INTERVAL", 0.5),
            turn_lock_ttl=_number(env, "KEFU_TURN_LOCK_TTL", 10.0),
            turn_lock_wait=_number(env, "KEFU_TURN_LOCK_WAIT", 75.0),
            replay_interval=_number(env, "KEFU_REPLAY_INTERVAL", 5.0),
            replay_grace=_number(env, "KEFU_REPLAY_GRACE",
                                 _number(env, "KEFU_RASA_TIMEOUT", 30.0) + 5.0),
            replay_grace_locked=_number(env, "KEFU_REPLAY_GRACE_LOCKED", 10.0),
            widget_handover=_number(env, "KEFU_WIDGET_HANDOVER", 10.0),
            telegram_lease=_number(env, "KEFU_TELEGRAM_LEASE", 15.0),
            widget_secret=env.get("KEFU_WIDGET_SECRET") or None,
            telegram_token=env.get("KEFU_TELEGRAM_TOKEN") or None,
            telegram_base_url=env.get("KEFU_TELEGRAM_BASE_URL") or None,
            telegram_base_file_url=env.get("KEFU_TELEGRAM_BASE_FILE_URL") or None,
            telegram_webhook_url=webhook_url,
            telegram_webhook_secret=secret,
        )
