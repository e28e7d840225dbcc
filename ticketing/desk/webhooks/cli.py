"""``python -m ticketing.desk.webhooks``: the delivery worker, endpoints and the delivery log.

    python -m ticketing.desk.webhooks [run] [--once]           # the worker (the default)
    python -m ticketing.desk.webhooks endpoints add --url https://shop.example/kefu \\
        --event ticket.created --event csat.received --by admin   # prints the secret once
    python -m ticketing.desk.webhooks endpoints list
    python -m ticketing.desk.webhooks endpoints disable 3 --by admin
    python -m ticketing.desk.webhooks endpoints enable 3 --by admin
    python -m ticketing.desk.webhooks log [--endpoint 3] [--status dead] [--event UID]
    python -m ticketing.desk.webhooks redeliver 42 --by admin

Settings (database, PII key) are read once here, at the process's edge, as
``ticketing.reports.jobs`` does; the rest is flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.errors import KefuError, ValidationError
from ticketing.core.metrics_listener import ListenerConfig, listener_config, start_listener
from ticketing.core.models import Agent, DeliveryStatus
from ticketing.core.pii import PiiCipher
from ticketing.desk.webhooks import delivery, endpoints, history
from ticketing.desk.webhooks.events import EVENT_TYPES
from ticketing.desk.webhooks.metrics import WebhookMetrics

log = logging.getLogger("ticketing.desk.webhooks")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m ticketing.desk.webhooks",
                                  description="Outgoing webhooks to the shop (docs/webhooks.md)")
    verbs = top.add_subparsers(dest="command", required=True)
    run = verbs.add_parser("run", help="deliver queued events (the default command)")
    run.add_argument("--once", action="store_true", help="one round, then exit")
    run.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                     help="seconds between polls when idle (default 2)")
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                     help="per request (default 10)")
    run.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                     help="how long a claim lasts; must exceed --timeout (default 60)")
    run.add_argument("--batch", type=int, default=10, help="deliveries per round (default 10)")
    run.add_argument("--max-attempts", type=int, default=12, help="then dead (default 12)")

    managed = verbs.add_parser("endpoints", help="add, list, disable or enable endpoints")
    ops = managed.add_subparsers(dest="op", required=True)
    add = ops.add_parser("add", help="register an endpoint; prints its secret once")
    add.add_argument("--url", required=True)
    add.add_argument("--event", action="append", required=True,
                     choices=[*EVENT_TYPES, endpoints.ALL_EVENTS], help="repeat for several")
    add.add_argument("--description", default="")
    add.add_argument("--allow-http", action="store_true",
                     help="accept plain http to a host other than localhost")
    add.add_argument("--by", required=True, help="login of the admin making the change")
    ops.add_parser("list", help="every endpoint (never the secrets)")
    for name in ("disable", "enable"):
        switch = ops.add_parser(name, help=f"{name} an endpoint")
        switch.add_argument("endpoint_id", type=int)
        switch.add_argument("--by", required=True, help="login of the admin making the change")

    shown = verbs.add_parser("log", help="deliveries, newest first, with every attempt")
    shown.add_argument("--endpoint", type=int)
    shown.add_argument("--status", choices=[s.value for s in DeliveryStatus])
    shown.add_argument("--event", help="an event id (Kefu-Event-Id)")
    shown.add_argument("--limit", type=int, default=20)

    again = verbs.add_parser("redeliver", help="queue a dead delivery again")
    again.add_argument("delivery_id", type=int)
    again.add_argument("--by", required=True, help="login of the admin making the change")
    return top


def admin_command(args: argparse.Namespace, session_factory: sessionmaker[Session],
                  cipher: PiiCipher, out: TextIO) -> int:
    """Every command but ``run``, in one transaction; a refused one changes nothing."""
    try:
        with session_factory.begin() as session:
            if args.command == "endpoints":
                _endpoints(args, session, cipher, out)
            elif args.command == "log":
                _log(args, session, out)
            else:
                history.redeliver(session, delivery_id=args.delivery_id,
                                  by_agent_id=_agent_id(session, args.by))
                out.write(f"delivery {args.delivery_id} queued again\n")
    except KefuError as exc:
        out.write(f"error: {exc.detail}\n")
        return 2
    return 0


def _endpoints(args: argparse.Namespace, session: Session, cipher: PiiCipher,
               out: TextIO) -> None:
    if args.op == "add":
        endpoint, secret = endpoints.add_endpoint(
            session, cipher=cipher, url=args.url, events=args.event,
            description=args.description, allow_http=args.allow_http,
            by_agent_id=_agent_id(session, args.by))
        out.write(f"endpoint {endpoint.id}: {endpoints.display_url(endpoint.url)} "
                  f"({', '.join(endpoint.events)})\nsigning secret: {secret}\n"
                  "(shown once: store it with the receiver now)\n")
    elif args.op == "list":
        for endpoint in endpoints.list_endpoints(session):
            state = "active" if endpoint.active else "disabled"
            out.write(f"{endpoint.id}\t{state}\t{endpoints.display_url(endpoint.url)}\t"
                      f"{','.join(endpoint.events)}\t{endpoint.description}\n")
    else:
        endpoint = endpoints.set_active(session, endpoint_id=args.endpoint_id,
                                        active=args.op == "enable",
                                        by_agent_id=_agent_id(session, args.by))
        out.write(f"endpoint {endpoint.id} {'enabled' if endpoint.active else 'disabled'}\n")


def _log(args: argparse.Namespace, session: Session, out: TextIO) -> None:
    entries = history.delivery_log(session, endpoint_id=args.endpoint, status=args.status,
                                   event_uid=args.event, limit=args.limit)
    if not entries:
        out.write("no deliveries\n")
    for entry in entries:
        d = entry.delivery
        when = d.delivered_at if d.delivered_at else d.next_attempt_at
        label = "delivered" if d.delivered_at else "next"
        out.write(f"delivery {d.id}\t{entry.event.type}\t{entry.event.uid}\tendpoint "
                  f"{d.endpoint_id} {entry.url}\t{d.status.value}\tattempts {d.attempts}\t"
                  f"{label} {when.isoformat(timespec='seconds')}\n")
        for attempt in entry.attempts:
            answer = attempt.status_code if attempt.status_code is not None else attempt.error
            out.write(f"  #{attempt.attempt} {attempt.started_at.isoformat(timespec='seconds')}"
                      f" {attempt.outcome}: {answer} ({attempt.duration_ms or 0} ms)\n")


def _agent_id(session: Session, login: str) -> int:
    agent_id = session.scalar(select(Agent.id).where(Agent.login == login))
    if agent_id is None:
        raise ValidationError(f"no agent with login {login!r}")
    return agent_id


def run_worker(args: argparse.Namespace, session_factory: sessionmaker[Session],
               cipher: PiiCipher, listener: ListenerConfig = ListenerConfig()) -> int:
    """The delivery loop (or ``--once``); its metrics are served when ``listener`` has a port."""
    import httpx

    config = delivery.DeliveryConfig(
        timeout_seconds=args.timeout, lease_seconds=args.lease, batch=args.batch,
        retry=delivery.RetryPolicy(max_attempts=args.max_attempts))
    with httpx.Client() as client:
        sender = delivery.HttpSender(client, config)
        if args.once:
            report = delivery.run_once(session_factory, cipher=cipher, sender=sender,
                                       config=config)
            log.info("one round: %d claimed, %d delivered, %d to retry, %d dead",
                     report.claimed, report.delivered, report.retried, report.dead)
            return 0
        metrics = WebhookMetrics()
        start_listener(metrics.registry, listener, process="webhooks")
        worker = delivery.DeliveryWorker(session_factory, cipher=cipher, sender=sender,
                                         config=config, interval_seconds=args.interval,
                                         metrics=metrics)
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        worker.run()
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    import sys

    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.errors import ConfigurationError
    from ticketing.core.settings import load_settings

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    session_factory = make_session_factory(make_engine(settings.database_url),
                                           schedule=settings.schedule)
    cipher = PiiCipher(settings.pii_key)
    if args.command != "run":
        return admin_command(args, session_factory, cipher, out or sys.stdout)
    try:
        return run_worker(args, session_factory, cipher, listener_config(os.environ))
    except ConfigurationError as exc:
        log.error("%s", exc.detail)
        return 2
