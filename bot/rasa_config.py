"""Where the Rasa server and the action server listen, and the endpoints file Rasa reads.

Rasa's ``endpoints.yml`` cannot branch on the environment, so it is rendered from ``KEFU_*``
variables into ``var/rasa/endpoints.yml`` before Rasa starts: conversation state goes to a
SQL tracker store (SQLite file under ``var/``) by default, and to Redis (tracker and lock
store) when ``KEFU_REDIS_URL`` is set. Either way it survives a Rasa restart.

It also says who may talk to Rasa. Rasa's HTTP API (trackers, events, external intents) is
protected by ``--auth-token``, which the clients send as ``?token=``; the REST channel's
webhook is not protected by it at all, so Rasa listens on 127.0.0.1 unless ``KEFU_RASA_HOST``
says otherwise, and then only with an explicit ``KEFU_RASA_TOKEN`` (a generated development
token in ``var/rasa.token`` would differ per machine). The gateway finds Rasa through
``KEFU_RASA_URLS`` (several servers, see :mod:`bot.rasa_pool`) or ``KEFU_RASA_URL`` (one).

``python -m bot.rasa_config`` writes the file and prints its path.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bot.rasa_pool import normalise_url
from ticketing.core.errors import ConfigurationError
from ticketing.core.hosts import is_loopback
from ticketing.core.shared_tokens import ACTION_TOKEN_HEADER
from ticketing.core.settings import dev_secret

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AssistantSettings:
    """The assistant's processes: ports (on 127.0.0.1), model directory, state stores."""

    rasa_port: int = 5005
    action_port: int = 5055
    rasa_host: str = "127.0.0.1"  # the interface Rasa binds (KEFU_RASA_HOST)
    rasa_token: str | None = None  # KEFU_RASA_TOKEN; None = the generated development token
    action_token: str | None = None  # KEFU_ACTION_TOKEN: Rasa shows it to the action server
    redis_url: str | None = None
    var_dir: Path = ROOT / "var"
    models_dir: Path = ROOT / "models"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AssistantSettings:
        env = os.environ if environ is None else environ
        return cls(
            rasa_port=int(env.get("KEFU_RASA_PORT", "5005")),
            action_port=int(env.get("KEFU_ACTION_PORT", "5055")),
            rasa_host=env.get("KEFU_RASA_HOST") or "127.0.0.1",
            rasa_token=env.get("KEFU_RASA_TOKEN") or None,
            action_token=env.get("KEFU_ACTION_TOKEN") or None,
            redis_url=env.get("KEFU_REDIS_URL") or None,
            var_dir=Path(env.get("KEFU_VAR_DIR", ROOT / "var")),
            models_dir=Path(env.get("KEFU_MODELS_DIR", ROOT / "models")),
        )

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}/webhook"

    @property
    def endpoints_path(self) -> Path:
        return self.var_dir / "rasa" / "endpoints.yml"


TOKEN_SECRET = "rasa.token"  # under var/: the development token when KEFU_RASA_TOKEN is unset


def server_token(settings: AssistantSettings) -> str:
    """The ``--auth-token`` Rasa starts with; refuses an exposed Rasa without a chosen token.

    The development token lives in ``settings.var_dir``, where :func:`client_token` finds it.
    """
    if settings.rasa_token:
        return settings.rasa_token
    if not is_loopback(settings.rasa_host):
        raise ConfigurationError(
            f"KEFU_RASA_HOST={settings.rasa_host} exposes Rasa beyond this machine: "
            "set KEFU_RASA_TOKEN (the same value in every gateway)")
    return dev_secret(TOKEN_SECRET, {"KEFU_VAR_DIR": str(settings.var_dir)})


@dataclass(frozen=True)
class RasaAccess:
    """How a client (the gateway) reaches Rasa: its servers and the token, if one was chosen."""

    urls: tuple[str, ...]
    token: str | None = None  # None: the development token (:func:`client_token`)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RasaAccess:
        env = os.environ if environ is None else environ
        name = "KEFU_RASA_URLS" if env.get("KEFU_RASA_URLS", "").strip() else "KEFU_RASA_URL"
        raw = env.get(name, "").strip()
        if not raw:
            raw = f"http://127.0.0.1:{env.get('KEFU_RASA_PORT', '5005')}"
        listed = [part for part in raw.split(",") if part.strip()] if name.endswith("S") else [raw]
        try:
            urls = tuple(dict.fromkeys(normalise_url(url) for url in listed))
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {exc}") from exc
        token = env.get("KEFU_RASA_TOKEN") or None
        remote = [url for url in urls if not is_loopback(httpx.URL(url).host)]
        if remote and not token:
            raise ConfigurationError(
                f"{name} reaches Rasa beyond 127.0.0.1 ({', '.join(remote)}): "
                "set KEFU_RASA_TOKEN to the token those servers run with")
        return cls(urls=urls, token=token)


def client_token(token: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The token a client sends: the chosen one, else the development token Rasa started with."""
    return token or dev_secret(TOKEN_SECRET, environ)


# Kefu's own Redis stores (appending trackers, an atomic lock): why, in their modules
REDIS_STORES = {"tracker": "bot.rasa_tracker_store.AppendingRedisTrackerStore",
                "lock": "bot.rasa_lock_store.RedisMutexLockStore"}


def _redis_store(url: str, *, kind: str) -> dict[str, object]:
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    store: dict[str, object] = {
        "type": REDIS_STORES[kind],
        "url": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": db,
        "key_prefix": f"kefu{kind}",  # Rasa accepts alphanumeric prefixes only
    }
    if parts.password:
        store["password"] = parts.password
    if parts.scheme == "rediss":
        store["use_ssl"] = True
    return store


def endpoints(settings: AssistantSettings) -> dict[str, object]:
    """The content of Rasa's endpoints file for these settings."""
    action: dict[str, object] = {"url": settings.action_url}
    if settings.action_token:  # actions/endpoint_guard.py checks it
        action["headers"] = {ACTION_TOKEN_HEADER: settings.action_token}
    config: dict[str, object] = {"action_endpoint": action}
    if settings.redis_url:
        config["tracker_store"] = _redis_store(settings.redis_url, kind="tracker")
        config["lock_store"] = _redis_store(settings.redis_url, kind="lock")
    else:
        config["tracker_store"] = {
            "type": "SQL",
            "dialect": "sqlite",
            "db": str(settings.var_dir / "rasa" / "tracker.db"),
        }
    return config


def write_endpoints(settings: AssistantSettings) -> Path:
    """Render the endpoints file (JSON is valid YAML) and return its path."""
    path = settings.endpoints_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(endpoints(settings), indent=2) + "\n", encoding="utf-8")
    return path


def main() -> int:
    print(write_endpoints(AssistantSettings.from_environ()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
