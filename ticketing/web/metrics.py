"""Prometheus metrics of the desk web, in a registry of its own (like the gateway's), and the
ASGI middleware that keeps them.

Requests are counted by method, route template (``/tickets/{ticket_id}``, never the concrete
path, so the series stay few; ``unmatched`` for what no route answered) and status; latency
is a histogram by route template. A live-update stream (``text/event-stream``) is counted
when it opens and held in a gauge while it lasts, but stays out of the latency histogram: it
is meant to last minutes. A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``,
which would buffer those streams.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing.core.metrics_listener import counting

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EVENT_STREAM = b"text/event-stream"


class DeskMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kefu_desk_requests_total",
                                "HTTP requests by method, route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("kefu_desk_request_seconds",
                                 "Request latency by route template (live streams excluded)",
                                 ["route"], registry=self.registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.live = Gauge("kefu_desk_live_connections",
                          "Open live-update streams (server-sent events)", registry=self.registry)
        self.live_opened = Counter("kefu_desk_live_streams_total",
                                   "Live-update streams opened", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _is_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).lower().startswith(EVENT_STREAM)
    return False


class MetricsMiddleware:
    """Counts every HTTP request of the app it wraps into :class:`DeskMetrics`."""

    def __init__(self, app: ASGIApp, *, metrics: DeskMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "stream": False}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message.get("status", 500)
                with counting("desk"):
                    if _is_stream(message):
                        seen["stream"] = True
                        self.metrics.live.inc()
                        self.metrics.live_opened.inc()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:  # an exception is still a request: the error middleware answers it with 500
            with counting("desk"):
                route = route_template(scope)
                method = scope.get("method", "")
                self.metrics.requests.labels(method if method in METHODS else "other", route,
                                             str(seen["status"])).inc()
                if seen["stream"]:
                    self.metrics.live.dec()
                else:
                    self.metrics.latency.labels(route).observe(time.perf_counter() - started)
