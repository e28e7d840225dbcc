"""The production layout under ``scripts/run_cluster.py``, with the faults of issue 13 §3.

Used by the fault suite and by ``tests/test_run_cluster.py``. The cluster gets a Redis of
its own (a private ``redis-server`` on a free port, so it can be killed and started again
without touching the shared one) and its own PostgreSQL database (made unreachable with
``ALLOW_CONNECTIONS false`` plus ``pg_terminate_backend``, never by stopping the shared
server). Every fault records when it began and when the cluster was whole again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy

from bot.rasa_config import ROOT

STEP = 10  # scripts/run_cluster.py: process i of a kind listens on its base port + 10 * i


def free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def base_port(taken: set[int]) -> int:
    """A base whose +0 and +10 ports are free (the cluster's process 0 and 1)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        pair = {port, port + STEP}
        if port + STEP < 65000 and not pair & taken and all(free(p) for p in pair):
            taken.update(pair)
            return port
    raise RuntimeError("no free port pair")


class PrivateRedis:
    """A throw-away ``redis-server`` (no persistence): a restart loses everything in it."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--maxclients", "2000"],
            stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"private redis-server on {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        """kill -9 and start again on the same port, empty (as a restart without persistence)."""
        self.kill()
        time.sleep(down_for)
        self.start()


@dataclass
class Fault:
    """One fault: what, when it began and when everything was ready again (monotonic)."""

    name: str
    started: float
    ended: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)


class Cluster:
    """``scripts/run_cluster.py`` with 2 gateways, 2 Rasa + 2 action servers, ``workers``
    SLA workers, a webhook sender and a desk."""

    def __init__(self, tmp: Path, database_url: str, *, env_extra: dict[str, str],
                 workers: int = 2) -> None:
        self.var = tmp
        taken: set[int] = set()
        self.ports = {name: base_port(taken) for name in (
            "gateway", "desk", "rasa", "action", "worker_metrics", "webhooks_metrics",
            "alerts_metrics")}
        redis_port = base_port(taken)
        self.redis = PrivateRedis(redis_port, tmp / "redis.log")
        self.database_url = database_url
        self.rasa_token = "fault-suite-" + os.urandom(8).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(KEFU_VAR_DIR=str(tmp), KEFU_DATABASE_URL=database_url,
                   KEFU_REDIS_URL=self.redis.url, KEFU_RASA_TOKEN=self.rasa_token,
                   KEFU_GATEWAY_PORT=str(self.ports["gateway"]),
                   KEFU_DESK_PORT=str(self.ports["desk"]), KEFU_RASA_PORT=str(self.ports["rasa"]),
                   KEFU_ACTION_PORT=str(self.ports["action"]),
                   KEFU_WORKER_METRICS_PORT=str(self.ports["worker_metrics"]),
                   KEFU_WEBHOOKS_METRICS_PORT=str(self.ports["webhooks_metrics"]),
                   KEFU_ALERTS_METRICS_PORT=str(self.ports["alerts_metrics"]),
                   PYTHONPATH=str(ROOT))
        env.update(env_extra)
        self.env = env
        self.lines: list[str] = []
        self.faults: list[Fault] = []
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/run_cluster.py", "--gateways", "2", "--rasa", "2",
             "--workers", str(workers), "--webhooks", "1", "--desks", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 420
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "all services ready" in line or "error    :" in line or time.monotonic() > deadline:
                break
        if not any("all services ready" in line for line in self.lines):
            self.stop()
            raise AssertionError(self.log())
        # keep reading the supervisor's output, or its pipe fills and it blocks
        import threading

        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def log(self) -> str:
        return "\n".join(self.lines[-80:])

    def state(self) -> dict[str, dict]:
        return json.loads((self.var / "cluster" / "cluster.json").read_text())

    def gateway(self, i: int) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway'] + STEP * i}/ws"

    def rasa_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports['rasa'] + STEP * i}"

    # -- faults ----------------------------------------------------------------------------------

    def kill(self, name: str, *, wait: bool = True) -> Fault:
        """kill -9 one supervised process and wait until the supervisor has it ready again
        (``wait=False``: only until it is gone, to see the cluster without it)."""
        before = self.state()[name]
        pid = before["pid"]
        fault = Fault(f"kill -9 {name}", time.monotonic())
        os.kill(pid, signal.SIGKILL)
        if wait:
            self.wait_ready(name, restarts=before.get("restarts", 0) + 1)
        else:
            _wait_gone(pid)
        fault.ended = time.monotonic()
        self.faults.append(fault)
        return fault

    def wait_ready(self, name: str, restarts: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                entry = self.state().get(name, {})
            except (OSError, ValueError):  # being replaced this very moment
                entry = {}
            if entry.get("ready") and entry.get("restarts", 0) >= restarts and entry.get("pid"):
                return
            time.sleep(0.25)
        raise AssertionError(f"{name} not back: {self.state().get(name)}")

    def restart_redis(self) -> Fault:
        fault = Fault("restart Redis", time.monotonic())
        self.redis.restart()
        fault.ended = time.monotonic()
        self.faults.append(fault)
        return fault

    def database_outage(self, seconds: float = 5.0) -> Fault:
        """Every connection to the cluster's database dropped and new ones refused, ``seconds``.

        From the processes' side this is a PostgreSQL stop and start; the shared server (and
        everyone else's databases on it) keeps running.
        """
        url = sqlalchemy.engine.make_url(self.database_url)
        name = url.database
        admin = sqlalchemy.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        fault = Fault("PostgreSQL unavailable", time.monotonic())
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                dropped = conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).scalar()
                fault.notes["connections_dropped"] = int(dropped or 0)
                time.sleep(seconds)
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        finally:
            admin.dispose()
        fault.ended = time.monotonic()
        self.faults.append(fault)
        return fault

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.redis.kill()
        return self.log()


def _wait_gone(pid: int, timeout: float = 10) -> None:
    """Until the process is gone (a connection made in the moment it dies is a turn cut
    short: that customer gets an apology and a ticket, tested apart).

    Gone means every thread: after SIGKILL the thread-group leader turns zombie at once while
    Rasa's other threads are still being torn down, and they hold its files, the listening
    socket included, so a connection made then is accepted and reset (seen in CI as a turn
    that could not move to the other Rasa server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, IndexError, ProcessLookupError):
                continue
        if all(state in ("Z", "X") for state in states):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still alive {timeout:.0f} s after SIGKILL")