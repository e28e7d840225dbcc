"""``make run-cluster``: the production layout on one machine, under a supervisor that restarts.

N gateways, N Rasa servers, N action servers, N SLA workers, N webhook senders, N desks and
one alerts job, against PostgreSQL (``KEFU_DATABASE_URL``) and Redis (``KEFU_REDIS_URL``),
both required: they are what lets processes of one kind run side by side (Redis tracker and
lock store for the Rasa servers, per-conversation locks, wake-ups and the Telegram lease for
the gateways, ``SKIP LOCKED`` leases for the workers). ``docs/deploy.md`` describes the same
layout on real machines; here every process listens on 127.0.0.1 and process number ``i``
takes its kind's base port + 10·i:

    gateway 8000, 8010, ...   desk 8001, 8011, ...   rasa 5005, 5015, ...   actions 5055, 5065, ...
    metrics of the processes without a port of their own (``KEFU_METRICS_PORT`` each):
    worker 8002, 8012, ...   webhooks 8003, 8013, ...   alerts 8004

Gateways, desks and action servers serve ``/metrics`` on their own port; the bases of the
others move with ``KEFU_WORKER_METRICS_PORT``, ``KEFU_WEBHOOKS_METRICS_PORT`` and
``KEFU_ALERTS_METRICS_PORT``.

Rasa server ``i`` calls action server ``i`` (one endpoints file each, under
``var/cluster/rasa-<i>/``); every gateway spreads conversations over all Rasa servers
(``KEFU_RASA_URLS``). A process that exits is started again (1 s, doubling to 15 s while it
keeps failing), as systemd's ``Restart=always`` would; ``var/cluster/cluster.json`` lists every
process's pid and address for tests and operators. Ctrl-C or SIGTERM stops everything.

    .venv/bin/python scripts/run_cluster.py [--gateways 2] [--rasa 2] [--workers 2] [--desks 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import assistant  # noqa: E402
from bot.rasa_config import TOKEN_SECRET, AssistantSettings  # noqa: E402
from scripts.run_stack import Service, _redact, _shown, prepare, rasa_service  # noqa: E402
from ticketing.core.errors import ConfigurationError  # noqa: E402
from ticketing.core.settings import dev_secret, load_settings, var_dir  # noqa: E402

log = logging.getLogger("kefu.cluster")

STEP = 10  # process i of a kind listens on its base port + STEP * i
RESTART_FIRST, RESTART_MAX = 1.0, 15.0


@dataclass(frozen=True)
class Layout:
    """How many processes of each kind; ports from the kinds' bases."""

    gateways: int = 2
    rasa: int = 2  # and as many action servers, one per Rasa server
    workers: int = 2
    webhooks: int = 2
    desks: int = 1
    gateway_port: int = 8000
    desk_port: int = 8001
    rasa_port: int = 5005
    action_port: int = 5055
    worker_metrics_port: int = 8002
    webhooks_metrics_port: int = 8003
    alerts_metrics_port: int = 8004


def cluster_services(layout: Layout, environ: dict[str, str]) -> list[Service]:
    """Every process of the layout, with its own environment; ConfigurationError if unfit."""
    settings = load_settings(environ)
    if not settings.database_url.startswith("postgresql"):
        raise ConfigurationError("run-cluster needs KEFU_DATABASE_URL=postgresql+psycopg://...")
    if not settings.redis_url:
        raise ConfigurationError("run-cluster needs KEFU_REDIS_URL=redis://...")
    py = sys.executable
    base = dict(environ, PYTHONPATH=str(ROOT))
    root_var = var_dir(environ)
    token = environ.get("KEFU_RASA_TOKEN") or dev_secret(TOKEN_SECRET, environ)
    base["KEFU_RASA_TOKEN"] = token
    pairs = [AssistantSettings(rasa_port=layout.rasa_port + STEP * i,
                               action_port=layout.action_port + STEP * i,
                               rasa_token=token, redis_url=settings.redis_url,
                               var_dir=root_var / "cluster" / f"rasa-{i}",
                               models_dir=Path(environ.get("KEFU_MODELS_DIR", ROOT / "models")))
             for i in range(layout.rasa)]
    rasa_urls = ",".join(pair.rasa_url for pair in pairs)
    services: list[Service] = []
    for i, pair in enumerate(pairs):
        services.append(Service(f"actions-{i}", assistant.action_server_argv(pair, py),
                                pair.action_url, env=assistant.action_env(base),
                                ready_url=f"http://127.0.0.1:{pair.action_port}/health"))
        rasa = rasa_service(pair)
        rasa.name = f"rasa-{i}"
        rasa.env = dict(rasa.env or {}, **{k: v for k, v in base.items() if k.startswith("KEFU_")})
        services.append(rasa)
    for i in range(layout.gateways):
        port = layout.gateway_port + STEP * i
        services.append(Service(f"gateway-{i}", [py, "-m", "bot"], f"http://127.0.0.1:{port}/",
                                env=dict(base, KEFU_GATEWAY_PORT=str(port),
                                         KEFU_RASA_URLS=rasa_urls),
                                ready_url=f"http://127.0.0.1:{port}/health"))
    for i in range(layout.desks):
        port = layout.desk_port + STEP * i
        services.append(Service(f"desk-{i}", [py, "-m", "ticketing.web"],
                                f"http://127.0.0.1:{port}/", env=dict(base, KEFU_DESK_PORT=str(port)),
                                ready_url=f"http://127.0.0.1:{port}/health"))
    services += [_background(f"worker-{i}", [py, "-m", "ticketing.desk.worker"],
                             layout.worker_metrics_port + STEP * i, base)
                 for i in range(layout.workers)]
    services += [_background(f"webhooks-{i}", [py, "-m", "ticketing.desk.webhooks"],
                             layout.webhooks_metrics_port + STEP * i, base)
                 for i in range(layout.webhooks)]
    services.append(_background("alerts", [py, "-m", "ticketing.reports.jobs"],
                                layout.alerts_metrics_port, base))
    return services


def _background(name: str, argv: list[str], metrics_port: int, base: dict[str, str]) -> Service:
    """A process with no HTTP server of its own: its metrics listener on ``metrics_port``."""
    return Service(name, argv, f"background, metrics http://127.0.0.1:{metrics_port}/metrics",
                   env=dict(base, KEFU_METRICS_PORT=str(metrics_port),
                            KEFU_METRICS_HOST="127.0.0.1"))


@dataclass
class Child:
    """One supervised process and its restart state."""

    service: Service
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    delay: float = RESTART_FIRST
    due: float = 0.0  # monotonic time of the next start after an exit
    ready: bool = False
    log_path: Path | None = None
    started_at: float = field(default=0.0)

    def start(self, logs: Path) -> None:
        self.log_path = logs / f"{self.service.name}.log"
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.service.argv, cwd=ROOT, env=self.service.env,
                                     stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        self.started_at = time.monotonic()
        self.ready = False


def write_state(children: list[Child], path: Path) -> None:
    state = {c.service.name: {"pid": c.proc.pid if c.proc and c.proc.poll() is None else None,
                              "where": _shown(c.service.where), "ready": c.ready,
                              "restarts": c.restarts, "log": str(c.log_path)}
             for c in children}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def supervise(children: list[Child], logs: Path, state_path: Path,
              stopping: list[bool]) -> None:
    """Start everything, restart what exits, report readiness, until told to stop."""
    for child in children:
        child.start(logs)
        print(f"started  : {child.service.name:<12} {_shown(child.service.where)}", flush=True)
    announced = False
    while not stopping[0]:
        now = time.monotonic()
        changed = False
        for child in children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                log.warning("%s exited with %s; starting it again in %.0f s",
                            child.service.name, proc.returncode, child.delay)
                child.proc, child.due, child.ready = None, now + child.delay, False
                child.delay = min(child.delay * 2, RESTART_MAX)
                changed = True
            elif proc is None and now >= child.due:
                child.start(logs)
                child.restarts += 1
                changed = True
            elif proc is not None and not child.ready:
                url = child.service.ready_url
                if url is None or assistant.answers(url):
                    child.ready, changed = True, True
                    if now - child.started_at > 30:
                        child.delay = RESTART_FIRST  # it stayed up: the next exit is news
            elif proc is not None and now - child.started_at > 60:
                child.delay = RESTART_FIRST
        if changed:
            write_state(children, state_path)
        if not announced and all(c.ready for c in children):
            print("all services ready", flush=True)
            announced = True
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--rasa", type=int, default=2, help="Rasa servers (and action servers)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--webhooks", type=int, default=2)
    parser.add_argument("--desks", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show URLs: the token
    environ = dict(os.environ)
    layout = Layout(gateways=args.gateways, rasa=args.rasa, workers=args.workers,
                    webhooks=args.webhooks, desks=args.desks,
                    gateway_port=int(environ.get("KEFU_GATEWAY_PORT", "8000")),
                    desk_port=int(environ.get("KEFU_DESK_PORT", "8001")),
                    rasa_port=int(environ.get("KEFU_RASA_PORT", "5005")),
                    action_port=int(environ.get("KEFU_ACTION_PORT", "5055")),
                    worker_metrics_port=int(environ.get("KEFU_WORKER_METRICS_PORT", "8002")),
                    webhooks_metrics_port=int(environ.get("KEFU_WEBHOOKS_METRICS_PORT", "8003")),
                    alerts_metrics_port=int(environ.get("KEFU_ALERTS_METRICS_PORT", "8004")))
    try:
        services = cluster_services(layout, environ)
    except (FileNotFoundError, ConfigurationError) as exc:
        print(f"error    : {exc}", flush=True)
        return 1
    settings = load_settings(environ)
    counts = prepare()
    print(f"database : {_redact(settings.database_url)} (migrated)")
    print(f"redis    : {_redact(settings.redis_url or '')}")
    if counts is not None:
        print("demo data: loaded " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    home = var_dir(environ) / "cluster"
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = [Child(service) for service in services]
    stopping = [False]

    def _stop(_signum: int, _frame: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        supervise(children, logs, home / "cluster.json", stopping)
    finally:
        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
        for child in children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
        print("kefu cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
