"""``python -m actions.server``: Kefu's action server, rasa_sdk's own app plus ``/metrics``.

The same command line as ``python -m rasa_sdk`` (``--actions actions --port 5055``, rasa_sdk's
parser), the same app (``rasa_sdk.endpoint.create_app``: ``/webhook``, ``/health``,
``/actions``), started the way ``rasa_sdk.endpoint.run`` starts it; two middlewares and a
route added so an operator can see what the actions do:

- ``kefu_action_calls_total{action, outcome}``: ``ok``; ``failed`` when the action broke and
  answered with the apology (:mod:`actions.failures`: its marker says ``action_failed`` or
  ``backend_unavailable``); ``rejected`` (HTTP 400: a form validation refused, or a body
  with no action call, counted as action ``none``); ``unknown`` (no such action, 404; its
  name is not kept, so callers cannot mint series); ``error`` (500);
- ``kefu_action_seconds{action}``: latency, from request to response.

rasa_sdk imports every module of the ``actions`` package when it registers actions, this one
too: nothing here runs at import time. One Sanic worker per process (the default): with
``ACTION_SERVER_SANIC_WORKERS`` > 1 each worker would count apart.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions import endpoint_guard
from ticketing.core.metrics_listener import counting
from ticketing.desk.handoffs import BACKEND_UNAVAILABLE, HANDOFF_MARKER_KEY

log = logging.getLogger("actions.server")

MARKER = f'"{HANDOFF_MARKER_KEY}"'.encode()
OUTCOMES = ("ok", "failed", "rejected", "unknown", "error")


class ActionMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("kefu_action_calls_total",
                             "Action calls by action and outcome (ok, failed: apologised and "
                             "handed off, rejected, unknown, error)",
                             ["action", "outcome"], registry=self.registry)
        self.latency = Histogram("kefu_action_seconds", "Action call latency, by action",
                                 ["action"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def action_name(request: Request) -> str:
    """The ``next_action`` of an action call ("" if there is none or the body is unreadable).

    A plain JSON body is parsed once: Sanic caches it for the handler. A deflated one (Rasa's
    ``COMPRESS_ACTION_SERVER_REQUEST``) is inflated here as well as in the handler.
    """
    try:
        if request.headers.get("Content-Encoding") == "deflate":
            call = json.loads(zlib.decompress(request.body))
        else:
            call = request.json
        name = call.get("next_action") if isinstance(call, dict) else None
    except Exception:  # the handler answers a bad body; here it is only nameless
        return ""
    return name if isinstance(name, str) else ""


def outcome_of(status: int, body: bytes | None) -> str:
    """What became of a call, from its answer (see the module's docstring)."""
    if status == 404:
        return "unknown"
    if status == 400:
        return "rejected"
    if not 200 <= status < 300:
        return "error"
    if body and MARKER in body and _apologised(body):
        return "failed"
    return "ok"


def _apologised(body: bytes) -> bool:
    try:
        answers = json.loads(body).get("responses") or []
    except (ValueError, AttributeError):
        return False
    for answer in answers:
        custom = answer.get("custom") if isinstance(answer, dict) else None
        marker = custom.get(HANDOFF_MARKER_KEY) if isinstance(custom, dict) else None
        if isinstance(marker, dict) and (marker.get("reason") == "action_failed"
                                         or marker.get("error") == BACKEND_UNAVAILABLE):
            return True
    return False


def install(app: Sanic, metrics: ActionMetrics) -> None:
    """Count every ``/webhook`` call into ``metrics`` and serve them at ``/metrics``."""

    @app.middleware("request")
    async def _started(request: Request) -> None:
        if request.path == "/webhook":
            request.ctx.kefu_started = time.perf_counter()

    @app.middleware("response")
    async def _finished(request: Request, answer: HTTPResponse) -> None:
        started = getattr(request.ctx, "kefu_started", None)
        if started is None:
            return
        with counting("actions"):
            outcome = outcome_of(answer.status, answer.body)
            name = "unknown" if outcome == "unknown" else action_name(request) or "none"
            metrics.calls.labels(name, outcome).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)

    @app.get("/metrics")
    async def _metrics(_request: Request) -> HTTPResponse:
        return response.raw(metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def build_app(actions: Any = "actions", *, cors: Any = None, auto_reload: bool = False,
              metrics: ActionMetrics | None = None) -> Sanic:
    """rasa_sdk's app for ``actions``, with Kefu's metrics and rasa_sdk's plugins attached."""
    from rasa_sdk.endpoint import create_app
    from rasa_sdk.plugin import plugin_manager

    app = create_app(actions, cors_origins=cors, auto_reload=auto_reload)
    install(app, metrics or ActionMetrics())
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Parse rasa_sdk's arguments, set up its logging, and serve (as ``rasa_sdk.endpoint.run``
    does, but on ``SANIC_HOST`` or 127.0.0.1, never every interface by default, and with
    ``KEFU_ACTION_TOKEN`` required beyond this machine: ``endpoint_guard.py``)."""
    from rasa_sdk import utils
    from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
    from rasa_sdk.endpoint import create_argument_parser, create_ssl_context

    args = create_argument_parser().parse_args(argv)
    host = endpoint_guard.serving_host(os.environ)
    token = endpoint_guard.required_token(host, os.environ)
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(logging.getLogger(APPLICATION_ROOT_LOGGER_NAME), args.log_file,
                                 args.loglevel, args.logging_config_file)
    utils.update_sanic_log_level()
    app = build_app(args.actions or "actions", cors=args.cors, auto_reload=args.auto_reload)
    endpoint_guard.guard(app, token)
    ssl = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    log.info("Kefu action server on %s://%s:%d (metrics at /metrics)",
             "https" if ssl else "http", host, args.port)
    app.run(host, args.port, ssl=ssl, workers=utils.number_of_sanic_workers())


if __name__ == "__main__":
    main()
