"""The gateway's configuration, from ``KEFU_*`` environment variables (see README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout: float = 30.0  # seconds before an answer counts as "too slow": apology + ticket
    max_chars: int = 4000
    rate_limit: int = 20  # messages per conversation per window
    rate_window: float = 60.0
    outbox_interval: float = 0.5  # seconds between outbox polls
    lease_seconds: float = 30.0
    widget_secret: str | None = None
    telegram_token: str | None = None
    telegram_base_url: str | None = None  # tests point this at a fake Bot API server
    telegram_base_file_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if environ is None else environ
        rasa_port = env.get("KEFU_RASA_PORT", "5005")
        webhook_url = env.get("KEFU_TELEGRAM_WEBHOOK_URL") or None
        secret = env.get("KEFU_TELEGRAM_WEBHOOK_SECRET") or None
        if webhook_url and not secret:
            raise ConfigurationError("KEFU_TELEGRAM_WEBHOOK_URL needs KEFU_TELEGRAM_WEBHOOK_SECRET")
        if secret and not all(c.isalnum() or c in "_-" for c in secret):
            raise ConfigurationError("KEFU_TELEGRAM_WEBHOOK_SECRET: only A-Z, a-z, 0-9, _ and -")
        return cls(
            host=env.get("KEFU_GATEWAY_HOST", "127.0.0.1"),
            port=int(_number(env, "KEFU_GATEWAY_PORT", 8000)),
            rasa_url=env.get("KEFU_RASA_URL") or f"http://127.0.0.1:{rasa_port}",
            rasa_timeout=_number(env, "KEFU_RASA_TIMEOUT", 30.0),
            max_chars=int(_number(env, "KEFU_MAX_MESSAGE_CHARS", 4000)),
            rate_limit=int(_number(env, "KEFU_RATE_LIMIT_PER_MINUTE", 20)),
            rate_window=60.0,
            outbox_interval=_number(env, "KEFU_OUTBOX_INTERVAL", 0.5),
            widget_secret=env.get("KEFU_WIDGET_SECRET") or None,
            telegram_token=env.get("KEFU_TELEGRAM_TOKEN") or None,
            telegram_base_url=env.get("KEFU_TELEGRAM_BASE_URL") or None,
            telegram_base_file_url=env.get("KEFU_TELEGRAM_BASE_FILE_URL") or None,
            telegram_webhook_url=webhook_url,
            telegram_webhook_secret=secret,
        )
