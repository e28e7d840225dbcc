"""`make run` in miniature: the launcher migrates, seeds an empty database, starts the worker,
the action server and the Rasa server (which answers a verified demo customer, through the
actions and the database, and opens its HTTP API only to the token's holders), and stops
cleanly; a second start keeps the data.

Needs the trained model (`make test` trains it first)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from ticketing.core.db import make_engine
from ticketing.core.models import Agent, Order, Product

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(var: Path, until: str = "Ctrl-C stops everything",
           ports: tuple[int, int, int] | None = None,
           desk_port: int | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    rasa_port, action_port, gateway_port = ports or (_free_port(), _free_port(), _free_port())
    env.update(KEFU_VAR_DIR=str(var), KEFU_WORKER_INTERVAL="0.2", PYTHONUNBUFFERED="1",
               KEFU_RASA_PORT=str(rasa_port), KEFU_ACTION_PORT=str(action_port),
               KEFU_GATEWAY_PORT=str(gateway_port),
               KEFU_DESK_PORT=str(desk_port or _free_port()))
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_stack.py")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 400
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if until in line:
            return proc, lines
    proc.kill()
    raise AssertionError("launcher did not come up:\n" + "\n".join(lines))


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    lines.extend(out.splitlines())
    assert proc.returncode == 0, "\n".join(lines)
    assert "kefu stopped" in lines[-1]


def test_launcher_seeds_once_and_runs_the_whole_stack(tmp_path: Path) -> None:
    rasa_port, gateway_port, desk_port = _free_port(), _free_port(), _free_port()
    proc, lines = _start(tmp_path, until="all services ready",
                         ports=(rasa_port, _free_port(), gateway_port), desk_port=desk_port)
    assert proc.poll() is None, "\n".join(lines)
    try:
        # Rasa's HTTP API and its REST webhook answer only with the token the gateway holds
        # (var/rasa.token): the webhook speaks as any sender it is given
        token = (tmp_path / "rasa.token").read_text().strip()
        webhook = f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook"
        spoofed = httpx.post(webhook, timeout=60,
                             json={"sender": "widget:demo-1", "message": "我的订单到哪了"})
        answer = httpx.post(webhook, params={"token": token}, timeout=60,
                            json={"sender": "widget:demo-1", "message": "我的订单到哪了"}).json()
        tracker_url = f"http://127.0.0.1:{rasa_port}/conversations/widget:demo-1/tracker"
        tracker_without = httpx.get(tracker_url, timeout=30)
        tracker_with = httpx.get(tracker_url, params={"token": token}, timeout=30)
        page = httpx.get(f"http://127.0.0.1:{gateway_port}/?customer=1", timeout=30).text
        widget = httpx.get(f"http://127.0.0.1:{gateway_port}/widget.js", timeout=30)
        health = httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=30).json()
        with httpx.Client(base_url=f"http://127.0.0.1:{desk_port}", timeout=30) as desk:
            signed_in = desk.post("/api/v1/session",
                                  json={"login": "xiaomei", "password": "kefu-demo"})
            console = desk.get("/")
        with httpx.Client(base_url=f"http://127.0.0.1:{desk_port}", timeout=30) as boss:
            boss.post("/api/v1/session", json={"login": "manager", "password": "kefu-demo"})
            summary = boss.get("/api/v1/reports/summary").json()
    finally:
        _stop(proc, lines)
    text = "\n".join(lines)
    assert "demo data: loaded" in text
    assert tracker_without.status_code == 401 and tracker_with.status_code == 200
    assert spoofed.status_code == 401  # nothing ran: the answer below is the first turn's
    assert token not in text  # never printed, not even in the readiness line
    assert "sla-worker" in text and "worker started" in text
    assert "ready    : actions" in text and "ready    : rasa" in text
    assert "ready    : gateway" in text
    assert "ready    : desk" in text
    assert signed_in.status_code == 200 and signed_in.json()["agent"]["role"] == "agent"
    assert console.status_code == 200 and "kefu_desk" in signed_in.headers["set-cookie"]
    # the demo manager's dashboard has a week to show: tickets, ratings, conversations
    figures = {f["key"]: f for f in summary["figures"]}
    assert int(figures["tickets"]["value"]) > 10 and figures["csat"]["n"] > 3, figures
    assert figures["containment"]["value"].endswith("%"), figures["containment"]
    assert "alert job started" in text
    # the gateway serves the demo shop with the widget, signed in as demo customer 1
    assert 'src="/widget.js"' in page and "__KEFU_TOKEN__" not in page and "1." in page
    assert widget.status_code == 200 and "KefuWidget" in widget.text
    assert health["status"] == "ok", health
    # a verified demo customer is offered their own recent orders, read from the database
    buttons = [b for m in answer for b in m.get("buttons", [])]
    assert buttons and all("order_id" in b["payload"] for b in buttons), answer

    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    with engine.connect() as conn:
        orders = conn.execute(select(func.count()).select_from(Order)).scalar_one()
        products = conn.execute(select(func.count()).select_from(Product)).scalar_one()
        agents = conn.execute(select(func.count()).select_from(Agent)).scalar_one()
    engine.dispose()
    assert orders >= 150 and products >= 40 and agents > 0
    assert (tmp_path / "pii.key").exists()

    proc, lines = _start(tmp_path)
    _stop(proc, lines)
    assert "already has data" in "\n".join(lines)
