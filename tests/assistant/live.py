"""A real assistant for tests: the action server and the Rasa server on free local ports,
over a fresh SQLite demo shop in a temporary directory (optionally Redis as tracker store)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bot import assistant
from bot.rasa_client import RasaClient
from bot.rasa_config import ROOT, AssistantSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SEED = """
from ticketing.core import migrate
from ticketing.demo import data as demo_data
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
s = load_settings(); migrate.upgrade(s.database_url)
with make_session_factory(make_engine(s.database_url)).begin() as session:
    demo_data.load(session, cipher=PiiCipher(s.pii_key))
"""


class LiveAssistant:
    def __init__(self, var: Path, *, redis_url: str | None = None) -> None:
        self.var = var
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        self.env.update(KEFU_VAR_DIR=str(var), KEFU_DATABASE_URL=f"sqlite:///{var / 'kefu.db'}",
                        KEFU_AUTO_ASSIGN_AFTER="off")
        if redis_url:
            self.env["KEFU_REDIS_URL"] = redis_url
        self.settings = AssistantSettings(rasa_port=free_port(), action_port=free_port(),
                                          redis_url=redis_url, var_dir=var)
        self.actions: subprocess.Popen[bytes] | None = None
        self.rasa: subprocess.Popen[bytes] | None = None
        self.client = RasaClient(self.settings.rasa_url, timeout=60)

    @property
    def database_url(self) -> str:
        return self.env["KEFU_DATABASE_URL"]

    def seed(self) -> None:
        subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=self.env, check=True)

    def start(self) -> None:
        self.actions = subprocess.Popen(
            assistant.action_server_argv(self.settings), cwd=ROOT,
            env=assistant.action_env(self.env), stdout=(self.var / "actions.log").open("ab"),
            stderr=subprocess.STDOUT)
        self.start_rasa()
        assistant.wait_until_up(f"http://127.0.0.1:{self.settings.action_port}/health",
                                timeout=60, process=self.actions)

    def start_rasa(self) -> None:
        self.rasa = subprocess.Popen(
            assistant.rasa_server_argv(self.settings), cwd=ROOT,
            env=assistant.rasa_env(self.env), stdout=(self.var / "rasa.log").open("ab"),
            stderr=subprocess.STDOUT)
        assistant.wait_until_up(f"{self.settings.rasa_url}/status", timeout=300, process=self.rasa)

    def stop_rasa(self) -> None:
        if self.rasa is not None:
            self.rasa.terminate()
            try:
                self.rasa.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.rasa.kill()
            self.rasa = None

    def stop(self) -> None:
        self.client.close()
        self.stop_rasa()
        if self.actions is not None:
            self.actions.terminate()
            self.actions.wait(timeout=30)

    def logs(self) -> str:
        parts = []
        for name in ("rasa.log", "actions.log"):
            path = self.var / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)
