"""The background processes' metrics listener: off without a port, serving its registry with
one, and never an error for the process (a bad value or a taken port is logged)."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from ticketing.core.metrics_listener import (
    ListenerConfig,
    counting,
    listener_config,
    start_listener,
)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("kefu_probe_total", "A probe", registry=registry).inc(3)
    return registry


def test_no_port_means_no_listener() -> None:
    assert listener_config({}) == ListenerConfig(None, "127.0.0.1")
    assert listener_config({"KEFU_METRICS_PORT": "off"}).port is None
    assert start_listener(_registry(), ListenerConfig(None), process="test") is None


def test_port_and_host_come_from_the_environment() -> None:
    assert listener_config({"KEFU_METRICS_PORT": " 9102 ", "KEFU_METRICS_HOST": "10.0.0.5"}) \
        == ListenerConfig(9102, "10.0.0.5")


@pytest.mark.parametrize("bad", ["ninety", "0", "-1", "70000"])
def test_a_bad_port_is_logged_and_ignored(bad: str, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="ticketing.core.metrics_listener"):
        assert listener_config({"KEFU_METRICS_PORT": bad}).port is None
    assert "is not a port" in caplog.text


def test_the_listener_serves_its_registry() -> None:
    listener = start_listener(_registry(), ListenerConfig(0), process="test")  # any free port
    assert listener is not None
    try:
        answer = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=5)
    finally:
        listener.close()
    assert answer.status_code == 200
    assert "kefu_probe_total 3.0" in answer.text


def test_a_taken_port_is_logged_and_the_process_goes_on(caplog) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="ticketing.core.metrics_listener"):
            assert start_listener(_registry(), ListenerConfig(port), process="worker") is None
    assert f"worker: metrics listener on 127.0.0.1:{port} could not start" in caplog.text


def test_a_failing_metric_update_is_logged_not_raised(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="ticketing.core.metrics_listener"):
        with counting("desk"):
            raise ValueError("a label missing")
    assert "desk: updating metrics failed" in caplog.text
