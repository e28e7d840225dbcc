"""Reading Prometheus pages in tests: :func:`samples` of a page, and :func:`scrape_process`,
which starts a background process (worker, webhook sender, alerts job) as ``make
run-cluster`` does, with ``KEFU_METRICS_PORT`` set, on its own SQLite database, and reads
its ``/metrics``."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_KEY
from ticketing.core.db import make_engine
from ticketing.core.models import Base
from ticketing.core.settings import PROJECT_ROOT


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape_process(module: str, tmp_path: Path, *, timeout: float = 60.0) -> str:
    """``python -m <module>`` with a metrics port; its first ``/metrics`` page. The process
    is stopped (SIGTERM) before returning."""
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_DATABASE_URL=url, KEFU_VAR_DIR=str(tmp_path), KEFU_METRICS_PORT=str(port),
               KEFU_PII_KEY=base64.b64encode(TEST_KEY).decode(), KEFU_AUTO_ASSIGN_AFTER="off",
               PYTHONPATH=str(PROJECT_ROOT))
    log = (tmp_path / "process.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=PROJECT_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "process.log").read_text()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                if answer.status_code == 200:
                    return answer.text
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{module}: no metrics on port {port} within {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
