"""The Prometheus listener of the processes that have no HTTP server of their own.

The SLA worker, the webhook sender and the alerts job serve their metrics registry on a port
of their own when one is configured (``KEFU_METRICS_PORT``, on ``KEFU_METRICS_HOST``,
127.0.0.1 unless set), read once at the process's edge by :func:`listener_config`. Without a
port there is no listener, as under ``make run``; ``make run-cluster`` gives each process its
own. Metrics never stop a process: a bad value or a port already taken is logged and the
process carries on without its listener.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("ticketing.core.metrics_listener")

PORT_VARIABLE = "KEFU_METRICS_PORT"
HOST_VARIABLE = "KEFU_METRICS_HOST"
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ListenerConfig:
    """Where a background process serves ``/metrics``; ``port`` None: nowhere."""

    port: int | None = None
    host: str = DEFAULT_HOST


def listener_config(env: Mapping[str, str]) -> ListenerConfig:
    """``KEFU_METRICS_PORT`` and ``KEFU_METRICS_HOST`` of the environment a process's ``main``
    hands in; a port that is not one is logged and treated as unset (metrics are not worth a
    process that will not start)."""
    host = (env.get(HOST_VARIABLE) or "").strip() or DEFAULT_HOST
    raw = (env.get(PORT_VARIABLE) or "").strip()
    if not raw or raw.lower() in ("off", "no", "false", "none"):
        return ListenerConfig(None, host)
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        log.error("%s=%r is not a port: no metrics listener", PORT_VARIABLE, raw)
        return ListenerConfig(None, host)
    return ListenerConfig(port, host)


class Listener:
    """A running listener (a daemon thread); :meth:`close` stops it (tests, clean exits)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_listener(registry: CollectorRegistry, config: ListenerConfig, *,
                   process: str) -> Listener | None:
    """Serve ``registry`` at ``http://host:port/metrics`` in a daemon thread; None when no
    port is configured or the listener cannot start (logged, never raised)."""
    if config.port is None:
        return None
    try:
        server, thread = start_http_server(config.port, addr=config.host, registry=registry)
    except Exception:  # a port in use, an address not ours: the process runs on without it
        log.exception("%s: metrics listener on %s:%d could not start; running without it",
                      process, config.host, config.port)
        return None
    listener = Listener(server, thread)
    log.info("%s: metrics on http://%s:%d/metrics", process, config.host, listener.port)
    return listener


@contextmanager
def counting(process: str) -> Iterator[None]:
    """Around metric updates: a failure there is logged, never raised into the real work."""
    try:
        yield
    except Exception:
        log.exception("%s: updating metrics failed", process)
