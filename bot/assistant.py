"""How to start the assistant's two processes: the Rasa server and the action server.

Rasa runs in its own virtual environment (``.venv-rasa``: TensorFlow 2.12, SQLAlchemy 1.4);
the action server runs in the application's (``.venv``) because actions call ``ticketing``.
Both listen on 127.0.0.1 only. ``make run``, ``make shell``, the integration tests and the
benchmarks all start them through this module, so they are started the same way everywhere.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

from bot.rasa_config import ROOT, AssistantSettings, write_endpoints

RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PYTHON = RASA_BIN.with_name("python")
CREDENTIALS = ROOT / "bot" / "credentials.yml"


def rasa_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Rasa commands: no telemetry prompt, quiet TensorFlow."""
    env = dict(os.environ)
    env.update({"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONWARNINGS": "ignore"})
    # the custom components (bot/nlu) and bot/rasa_server.py are imported from the checkout
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def action_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["SANIC_HOST"] = "127.0.0.1"  # rasa_sdk binds 0.0.0.0 otherwise
    env.update(extra or {})
    return env


def model_path(settings: AssistantSettings) -> Path:
    """The trained model (``make train`` writes ``models/kefu.tar.gz``)."""
    fixed = settings.models_dir / "kefu.tar.gz"
    if fixed.exists():
        return fixed
    models = sorted(settings.models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise FileNotFoundError(f"no trained model in {settings.models_dir}: run `make train`")
    return models[-1]


def action_server_argv(settings: AssistantSettings, python: str | None = None) -> list[str]:
    """Kefu's action server (``actions/server.py``): rasa_sdk's, plus ``/metrics``."""
    return [python or sys.executable, "-m", "actions.server", "--actions", "actions",
            "--port", str(settings.action_port)]


def rasa_server_argv(settings: AssistantSettings, model: Path | None = None) -> list[str]:
    """``rasa run`` (through ``bot/rasa_server.py``) with the REST channel and the HTTP API.

    Bound to 127.0.0.1; ``scripts/run_stack.py`` sets another interface when configured. The
    auth token, when there is one, travels in the environment (``KEFU_RASA_TOKEN``).
    """
    endpoints = write_endpoints(settings)
    return [str(RASA_PYTHON), "-m", "bot.rasa_server", "run", "--model", str(model or model_path(settings)),
            "--enable-api", "--interface", "127.0.0.1", "--port", str(settings.rasa_port),
            "--endpoints", str(endpoints), "--credentials", str(CREDENTIALS),
            "--response-timeout", "30"]


def answers(url: str) -> bool:
    """True when ``url`` answers 200 right now."""
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_up(url: str, *, timeout: float = 180.0, process: object = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` (a Popen) died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(f"process for {url} exited with {process.returncode}")  # type: ignore[attr-defined]
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout:.0f}s ({last})")
