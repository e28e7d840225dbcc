"""The desk's ``/metrics`` (ticketing.web.metrics): requests by route template and status,
latency by route template, live streams open, over a real server."""

from __future__ import annotations

import time

import httpx

from tests.ticketing.metrics_process import samples
from tests.ticketing.web.test_live import Stream, cookies_for, serve
from ticketing.web.metrics import route_template


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{base}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(answer.text)


def live_connections(base: str) -> float:
    return scrape(base)[("kefu_desk_live_connections", ())]


def requests(method: str, route: str, status: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("kefu_desk_requests_total",
            (("method", method), ("route", route), ("status", str(status))))


def test_requests_are_counted_by_route_template_and_status(app, people) -> None:
    with serve(app) as base:
        with httpx.Client(base_url=base) as c:
            assert c.get("/health").status_code == 200
            for ticket_id in (1, 2, 3):  # three paths, one template; signed out: 401
                assert c.get(f"/api/v1/tickets/{ticket_id}/viewers").status_code == 401
            assert c.get("/no/such/page").status_code == 404
        cookies_for(base, people.desk.l1)  # POST /api/v1/session
        got = scrape(base)
    assert got[requests("GET", "/health", 200)] == 1
    assert got[requests("GET", "/api/v1/tickets/{ticket_id}/viewers", 401)] == 3
    assert got[requests("GET", "unmatched", 404)] == 1
    assert got[requests("POST", "/api/v1/session", 200)] == 1
    assert got[("kefu_desk_request_seconds_count", (("route", "/health"),))] == 1
    assert not any("/no/such/page" in str(key) for key in got)  # no series per concrete path


def test_a_live_stream_is_held_in_the_gauge_while_it_lasts(app, people) -> None:
    with serve(app) as base:
        assert live_connections(base) == 0
        stream = Stream(base, cookies_for(base, people.desk.l1))
        try:
            stream.next("ready")
            assert live_connections(base) == 1
        finally:
            stream.close()
        deadline = time.monotonic() + 10  # the server notices the disconnect on its own time
        while live_connections(base) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        got = scrape(base)
    assert got[("kefu_desk_live_connections", ())] == 0
    assert got[("kefu_desk_live_streams_total", ())] == 1
    assert got[requests("GET", "/api/v1/events", 200)] == 1
    # a stream is meant to last minutes: it stays out of the latency histogram
    assert ("kefu_desk_request_seconds_count", (("route", "/api/v1/events"),)) not in got


def test_metrics_is_not_in_the_openapi_document(client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/metrics" not in paths and client.get("/metrics").status_code == 200


def test_route_template_of_an_unrouted_scope() -> None:
    assert route_template({"type": "http"}) == "unmatched"
