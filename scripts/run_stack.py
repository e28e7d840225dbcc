"""`make run`: migrate, load demo data into an empty database, start every Kefu process.

Processes are children of this one; Ctrl-C (or SIGTERM) stops them all: the SLA worker, the
action server and the Rasa server (REST channel and HTTP API on 127.0.0.1, the model that
``make train`` wrote). Each part of Kefu (worker, actions, Rasa, gateway, desk) adds itself to
``services()``.

Rasa's HTTP API runs with an auth token (``KEFU_RASA_TOKEN``, else the development token in
``var/rasa.token`` that the gateway reads too). The token reaches Rasa through its environment,
never its command line, which every local user can read (``ps``). Rasa binds ``KEFU_RASA_HOST``
(127.0.0.1 by default); any other interface needs an explicit ``KEFU_RASA_TOKEN``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import assistant  # noqa: E402
from bot.gateway.settings import GatewaySettings  # noqa: E402
from bot.rasa_config import AssistantSettings, is_loopback, server_token  # noqa: E402
from ticketing.core.errors import ConfigurationError  # noqa: E402
from ticketing.core import migrate  # noqa: E402
from ticketing.demo import data as demo_data
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.pii import PiiCipher  # noqa: E402
from ticketing.core.settings import load_settings  # noqa: E402

log = logging.getLogger("kefu.run")


@dataclass
class Service:
    name: str
    argv: list[str]
    where: str
    env: dict[str, str] | None = None
    ready_url: str | None = None  # polled after start; "<name> ready" is printed when it answers


def rasa_service(rasa: AssistantSettings) -> Service:
    """Rasa on ``KEFU_RASA_HOST`` with its auth token; ConfigurationError when exposed without one."""
    token = server_token(rasa)
    argv = assistant.rasa_server_argv(rasa)
    if "--interface" in argv:
        argv[argv.index("--interface") + 1] = rasa.rasa_host
    else:
        argv += ["--interface", rasa.rasa_host]
    wildcard = rasa.rasa_host in ("0.0.0.0", "::", "")
    host = "127.0.0.1" if wildcard or is_loopback(rasa.rasa_host) else rasa.rasa_host
    base = f"http://{f'[{host}]' if ':' in host else host}:{rasa.rasa_port}"
    return Service("rasa", argv, f"{base}/webhooks/rest/webhook",
                   env=assistant.rasa_env({"KEFU_RASA_TOKEN": token}),
                   ready_url=f"{base}/status?token={quote(token, safe='')}")


def _shown(url: str) -> str:
    """A URL as printed: without its query, where the token is."""
    return url.split("?", 1)[0]


def services() -> list[Service]:
    py = sys.executable
    settings = load_settings()
    rasa = AssistantSettings.from_environ()
    gateway = GatewaySettings.from_environ()
    return [
        Service("sla-worker", [py, "-m", "ticketing.desk.worker"], "background (no port)"),
        Service("alerts", [py, "-m", "ticketing.reports.jobs"],
                "background (no port), every 15 min"),
        Service("webhooks", [py, "-m", "ticketing.desk.webhooks"], "background (no port)"),
        Service("actions", assistant.action_server_argv(rasa, py), rasa.action_url,
                env=assistant.action_env(), ready_url=f"http://127.0.0.1:{rasa.action_port}/health"),
        rasa_service(rasa),
        Service("gateway", [py, "-m", "bot"],
                f"http://{gateway.host}:{gateway.port}/ (demo shop with the chat widget)",
                ready_url=f"http://127.0.0.1:{gateway.port}/health"),
        Service("desk", [py, "-m", "ticketing.web"],
                f"http://{settings.desk_host}:{settings.desk_port}/ (agent console)",
                ready_url=f"http://127.0.0.1:{settings.desk_port}/health"),
    ]


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def prepare() -> dict[str, int] | None:
    """Migrate and seed; returns the demo counts when data was loaded now, else None."""
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine, schedule=settings.schedule)
    try:
        with factory.begin() as session:
            if demo_data.is_empty(session):
                return demo_data.load(session, cipher=PiiCipher(settings.pii_key))
            return None
    finally:
        engine.dispose()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show URLs: the token
    settings = load_settings()
    counts = prepare()
    print(f"database : {_redact(settings.database_url)} (migrated)")
    print(f"redis    : {_redact(settings.redis_url) if settings.redis_url else 'not configured (database fallback)'}")
    if counts is not None:
        print("demo data: loaded " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    else:
        print("demo data: database already has data, left as it is")

    # the demo shop's sign-in page (/?customer=<id>) is for this one-machine demo only: on
    # unless KEFU_DEMO_PAGE says otherwise; a shop's own deployment never turns it on
    os.environ.setdefault("KEFU_DEMO_PAGE", "on")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    children: list[tuple[Service, subprocess.Popen[bytes]]] = []
    try:
        wanted = services()
    except (FileNotFoundError, ConfigurationError) as exc:  # no trained model, exposed Rasa
        print(f"error    : {exc}", flush=True)
        return 1
    for svc in wanted:
        child_env = dict(svc.env or env, PYTHONPATH=str(ROOT))
        # one port cannot serve several processes: `make run-cluster` gives each its own
        child_env.pop("KEFU_METRICS_PORT", None)
        children.append((svc, subprocess.Popen(svc.argv, cwd=ROOT, env=child_env)))
        print(f"started  : {svc.name:<12} {svc.where}")
    print("kefu is running; Ctrl-C stops everything", flush=True)
    pending = [svc for svc, _proc in children if svc.ready_url]

    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    status = 0
    while not stopping:
        for svc, proc in children:
            if proc.poll() is not None:
                log.error("%s exited with %s; stopping the stack", svc.name, proc.returncode)
                stopping, status = True, 1
        for svc in list(pending):
            if assistant.answers(svc.ready_url or ""):
                pending.remove(svc)
                print(f"ready    : {svc.name:<12} {_shown(svc.ready_url or '')}", flush=True)
                if not pending:
                    print("all services ready", flush=True)
        time.sleep(0.5)
    for _svc, proc in children:
        if proc.poll() is None:
            proc.terminate()
    for _svc, proc in children:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("kefu stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
