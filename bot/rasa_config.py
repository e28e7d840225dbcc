"""Where the Rasa server and the action server listen, and the endpoints file Rasa reads.

Rasa's ``endpoints.yml`` cannot branch on the environment, so it is rendered from ``KEFU_*``
variables into ``var/rasa/endpoints.yml`` before Rasa starts: conversation state goes to a
SQL tracker store (SQLite file under ``var/``) by default, and to Redis (tracker and lock
store) when ``KEFU_REDIS_URL`` is set. Either way it survives a Rasa restart.

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

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AssistantSettings:
    """The assistant's processes: ports on 127.0.0.1, model directory, state stores."""

    rasa_port: int = 5005
    action_port: int = 5055
    redis_url: str | None = None
    var_dir: Path = ROOT / "var"
    models_dir: Path = ROOT / "models"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AssistantSettings:
        env = os.environ if environ is None else environ
        return cls(
            rasa_port=int(env.get("KEFU_RASA_PORT", "5005")),
            action_port=int(env.get("KEFU_ACTION_PORT", "5055")),
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


def _redis_store(url: str, *, kind: str) -> dict[str, object]:
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    store: dict[str, object] = {
        "type": "redis",
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
    config: dict[str, object] = {"action_endpoint": {"url": settings.action_url}}
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
