"""One settings object, read from ``KEFU_*`` environment variables at a process's edge.

Only the edges (action runtime, worker, gateway, desk, scripts) call :func:`load_settings`;
services never read the environment. What services need of the deployment's calendar
(time zone, business hours, follow-up delay, reopen window) travels with their session:
:func:`ticketing.core.db.make_session_factory` puts a :class:`ScheduleSettings` into every
session's ``info`` and :func:`schedule_of` reads it back.

Secrets never live in files of the repository: without ``KEFU_PII_KEY`` a development key is
generated once into ``var/`` (outside git) so a fresh checkout runs with no set-up.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ticketing.core.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEZONE = "Asia/Shanghai"  # KEFU_TIMEZONE's default: the shop's calendar and clocks
SCHEDULE_KEY = "kefu.schedule"  # Session.info key holding the ScheduleSettings


def var_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("KEFU_VAR_DIR", PROJECT_ROOT / "var"))


def dev_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Read or create a random 32-byte key in var/ (development only; production sets its env var)."""
    path = var_dir(environ) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a Kefu process."""

    database_url: str
    redis_url: str | None
    pii_key: bytes
    timezone: str = DEFAULT_TIMEZONE
    business_hours: str | None = None  # e.g. "mon-sat 09:00-21:00"; None = round the clock
    worker_interval_seconds: float = 5.0
    followup_after_hours: float = 24.0
    reopen_window_days: float = 7.0
    auto_assign_after_seconds: float | None = 600.0  # None = no automatic dispatch
    desk_host: str = "127.0.0.1"
    desk_port: int = 8001
    desk_secure_cookies: bool = False  # set on behind HTTPS (KEFU_DESK_SECURE_COOKIES)
    # addresses whose X-Forwarded-For the desk believes (KEFU_DESK_TRUSTED_PROXIES): the
    # sign-in lockout by address needs the person's address, not the proxy's
    desk_trusted_proxies: str = "127.0.0.1"
    demo_page: bool = False  # the demo sign-in page (``KEFU_DEMO_PAGE``): `make run` turns it on
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def schedule(self) -> ScheduleSettings:
        """The part of the settings that services read from their session."""
        return ScheduleSettings(timezone=self.timezone, business_hours=self.business_hours,
                                followup_after_hours=self.followup_after_hours,
                                reopen_window_days=self.reopen_window_days)


def _decode_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ConfigurationError("KEFU_PII_KEY must be base64") from exc
    if len(key) != 32:
        raise ConfigurationError("KEFU_PII_KEY must decode to 32 bytes (AES-256)")
    return key


def parse_auto_assign_after(raw: str | None) -> float | None:
    """``KEFU_AUTO_ASSIGN_AFTER``: seconds a ticket may wait unclaimed before the worker
    dispatches it (default 600, 0 = at once); "off" or a negative number turns dispatch off."""
    if raw is None or not raw.strip():
        return 600.0
    if raw.strip().lower() in ("off", "no", "false", "none"):
        return None
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise ConfigurationError("KEFU_AUTO_ASSIGN_AFTER must be seconds or 'off'") from exc
    if seconds != seconds or seconds == float("inf"):  # NaN or inf: surely a mistake
        raise ConfigurationError("KEFU_AUTO_ASSIGN_AFTER must be a finite number of seconds")
    return None if seconds < 0 else seconds


@dataclass(frozen=True)
class ScheduleSettings:
    """The settings time arithmetic needs (SLA clocks, follow-ups), readable without the PII
    key, which such code has no business loading."""

    timezone: str = DEFAULT_TIMEZONE
    business_hours: str | None = None
    followup_after_hours: float = 24.0
    reopen_window_days: float = 7.0


def load_schedule(environ: Mapping[str, str] | None = None) -> ScheduleSettings:
    """``KEFU_TIMEZONE``, ``KEFU_BUSINESS_HOURS``, ``KEFU_FOLLOWUP_AFTER_HOURS`` and
    ``KEFU_REOPEN_WINDOW_DAYS``."""
    env = os.environ if environ is None else environ
    return ScheduleSettings(
        timezone=env.get("KEFU_TIMEZONE") or DEFAULT_TIMEZONE,
        business_hours=env.get("KEFU_BUSINESS_HOURS") or None,
        followup_after_hours=float(env.get("KEFU_FOLLOWUP_AFTER_HOURS", "24")),
        reopen_window_days=float(env.get("KEFU_REOPEN_WINDOW_DAYS", "7")),
    )


def schedule_of(session: object) -> ScheduleSettings:
    """The schedule the session's factory was made with; the defaults for a bare session."""
    info = getattr(session, "info", None) or {}
    schedule = info.get(SCHEDULE_KEY)
    return schedule if isinstance(schedule, ScheduleSettings) else ScheduleSettings()


def parse_switch(raw: str | None, *, default: bool) -> bool:
    """``on``/``off`` style variables: 0, off, no and false turn a switch off."""
    if raw is None or not raw.strip():
        return default
    return raw.strip().lower() not in ("0", "off", "no", "false")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    var = var_dir(env)
    schedule = load_schedule(env)
    database_url = env.get("KEFU_DATABASE_URL") or f"sqlite:///{var / 'kefu.db'}"
    redis_url = env.get("KEFU_REDIS_URL") or None
    pii_key = _decode_key(env.get("KEFU_PII_KEY") or dev_secret("pii.key", env))
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        pii_key=pii_key,
        timezone=schedule.timezone,
        business_hours=schedule.business_hours,
        worker_interval_seconds=float(env.get("KEFU_WORKER_INTERVAL", "5")),
        followup_after_hours=schedule.followup_after_hours,
        reopen_window_days=schedule.reopen_window_days,
        auto_assign_after_seconds=parse_auto_assign_after(env.get("KEFU_AUTO_ASSIGN_AFTER")),
        desk_host=env.get("KEFU_DESK_HOST", "127.0.0.1"),
        desk_port=int(env.get("KEFU_DESK_PORT", "8001")),
        desk_secure_cookies=parse_switch(env.get("KEFU_DESK_SECURE_COOKIES"), default=False),
        desk_trusted_proxies=env.get("KEFU_DESK_TRUSTED_PROXIES", "").strip() or "127.0.0.1",
        demo_page=parse_switch(env.get("KEFU_DEMO_PAGE"), default=False),
    )
