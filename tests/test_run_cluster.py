"""`make run-cluster` in miniature: 2 gateways, 2 Rasa + 2 action servers, a worker and a desk
on PostgreSQL + Redis, under the supervisor. One customer's messages alternate between the
gateways and are answered in order; a Rasa server killed with SIGKILL costs the customer
nothing (its conversations move to the other one) and is started again; so is a gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy

from bot.rasa_config import ROOT

PG_URL = os.environ.get("KEFU_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
MODEL = ROOT / "models" / "kefu.tar.gz"

pytestmark = [
    pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs PostgreSQL and Redis "
                       "(KEFU_TEST_DATABASE_URL, KEFU_TEST_REDIS_URL)"),
    pytest.mark.skipif(not MODEL.exists(), reason="needs a trained model (make train)"),
]


def _base_port() -> int:
    """A base whose +0 and +10 ports are free (the cluster's process 0 and 1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10 < 65000 and all(_free(port + step) for step in (0, 10)):
            return port
    raise RuntimeError("no free port pair")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def database_url() -> str:
    assert PG_URL is not None
    url = sqlalchemy.engine.make_url(PG_URL)
    name = f"kefu_cluster_{os.getpid()}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


class Cluster:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.var = tmp
        self.ports = {name: _base_port() for name in ("gateway", "desk", "rasa", "action",
                                                      "worker_metrics", "webhooks_metrics",
                                                      "alerts_metrics")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(KEFU_VAR_DIR=str(tmp), KEFU_DATABASE_URL=database_url,
                   KEFU_REDIS_URL=REDIS_URL or "", KEFU_AUTO_ASSIGN_AFTER="off",
                   KEFU_GATEWAY_PORT=str(self.ports["gateway"]),
                   KEFU_DESK_PORT=str(self.ports["desk"]), KEFU_RASA_PORT=str(self.ports["rasa"]),
                   KEFU_ACTION_PORT=str(self.ports["action"]),
                   KEFU_WORKER_METRICS_PORT=str(self.ports["worker_metrics"]),
                   KEFU_WEBHOOKS_METRICS_PORT=str(self.ports["webhooks_metrics"]),
                   KEFU_ALERTS_METRICS_PORT=str(self.ports["alerts_metrics"]),
                   PYTHONPATH=str(ROOT))
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/run_cluster.py", "--gateways", "2", "--rasa", "2",
             "--workers", "1", "--webhooks", "1", "--desks", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 420
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "all services ready" in line or "error    :" in line or time.monotonic() > deadline:
                break
        assert any("all services ready" in line for line in self.lines), self.log()

    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def state(self) -> dict[str, dict]:
        return json.loads((self.var / "cluster" / "cluster.json").read_text())

    def gateway(self, i: int) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway'] + 10 * i}/ws"

    def kill(self, name: str) -> None:
        """SIGKILL, then wait until the process is gone (a connection made in the moment it
        dies is a turn cut short: that customer gets an apology and a ticket, tested apart)."""
        pid = self.state()[name]["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, IndexError):
                return
            if state in ("Z", "X"):
                return
            time.sleep(0.05)

    def wait_ready(self, name: str, restarts: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.state().get(name, {})
            if entry.get("ready") and entry.get("restarts", 0) >= restarts:
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} not back: {self.state().get(name)}")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=90)
        self.lines.extend(out.splitlines())
        return self.log()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Cluster:
    running = Cluster(tmp_path_factory.mktemp("cluster"), database_url)
    yield running
    if running.proc.poll() is None:
        running.stop()


async def _say(url: str, visitor: str, text: str) -> list[str]:
    """One message over a fresh widget connection; the texts shown until it was handled."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        await ws.send_json({"type": "hello", "visitor": visitor, "token": None,
                            "language": "en"})
        assert (await ws.receive_json(timeout=60))["type"] == "welcome"
        client_id = f"m-{uuid.uuid4()}"
        await ws.send_json({"type": "message", "client_id": client_id, "text": text})
        shown: list[str] = []
        while True:
            frame = await ws.receive_json(timeout=90)
            if frame["type"] == "message":
                shown.append(frame.get("text", ""))
            if frame["type"] == "handled" and frame["client_id"] == client_id:
                break
        await ws.close()
        return shown


SCRIPT = [("hello", "Kefu"), ("what is your return policy", "return"),
          ("is the power bank in stock", "Power Bank"), ("thanks", "welcome")]


def _converse(cluster: Cluster, visitor: str) -> list[list[str]]:
    """The script, its messages alternating between gateway 0 and gateway 1."""
    return [asyncio.run(_say(cluster.gateway(i % 2), visitor, text))
            for i, (text, _expected) in enumerate(SCRIPT)]


def _check(answers: list[list[str]]) -> None:
    for (text, expected), shown in zip(SCRIPT, answers):
        assert any(expected.lower() in line.lower() for line in shown), (text, shown)


def test_a_conversation_alternating_between_gateways_is_answered_in_order(cluster) -> None:
    _check(_converse(cluster, f"v-cluster-{uuid.uuid4().hex[:8]}"))


def test_a_killed_rasa_server_costs_the_customer_nothing_and_comes_back(cluster) -> None:
    cluster.kill("rasa-0")
    for n in range(3):  # conversations of either server: rasa-0's move to rasa-1
        _check(_converse(cluster, f"v-after-rasa-{n}-{uuid.uuid4().hex[:8]}"))
    cluster.wait_ready("rasa-0", restarts=1)


def test_a_killed_gateway_is_started_again(cluster) -> None:
    cluster.kill("gateway-1")
    cluster.wait_ready("gateway-1", restarts=1)
    _check(_converse(cluster, f"v-after-gateway-{uuid.uuid4().hex[:8]}"))
    log = cluster.stop()
    assert "gateway-1 exited with -9" in log and "rasa-0 exited with -9" in log
    assert "kefu cluster stopped" in log
