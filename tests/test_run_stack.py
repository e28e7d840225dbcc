"""`make run` in miniature: the launcher migrates, seeds an empty database, starts the worker,
and stops cleanly; a second start keeps the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from ticketing.db import make_engine
from ticketing.models import Agent, Order, Product

ROOT = Path(__file__).resolve().parent.parent


def _start(var: Path, until: str = "Ctrl-C stops everything") -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_VAR_DIR=str(var), KEFU_WORKER_INTERVAL="0.2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_stack.py")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
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


def test_launcher_seeds_once_and_runs_the_worker(tmp_path: Path) -> None:
    proc, lines = _start(tmp_path, until="worker started")
    assert proc.poll() is None, "\n".join(lines)
    _stop(proc, lines)
    text = "\n".join(lines)
    assert "demo data: loaded" in text
    assert "sla-worker" in text
    assert "worker started" in text

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
