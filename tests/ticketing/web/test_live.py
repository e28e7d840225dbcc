"""Live updates end to end: the SSE stream over a real server (uvicorn in a thread), on the
database poll and with Redis pub/sub; resuming with Last-Event-ID; the collision hint.

Latencies from commit to delivery are printed (``-s``), never asserted.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, new_ticket
from tests.ticketing.web.conftest import PASSWORD, sign_in
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
from ticketing.desk import live_events, ownership, tickets
from ticketing.web import live
from ticketing.web.app import create_app


# --- a real server and an SSE reader -----------------------------------------------------------
@contextmanager
def serve(app) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Event:
    kind: str
    id: str | None
    data: dict
    received: float


class Stream:
    """GET an SSE URL in a thread; parsed events land in a queue with their arrival time.

    Plain ``http.client``, so :meth:`close` can shut the socket down under the reading
    thread: the server sees the disconnect at once, as when a browser tab closes."""

    def __init__(self, base: str, cookies: httpx.Cookies, path: str = "/api/v1/events",
                 headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.status: int | None = None
        self.last_id: str | None = None
        host, port = base.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self._conn.connect()
        self._sock = self._conn.sock
        sent = {"Accept": "text/event-stream",
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), **(headers or {})}
        self._conn.request("GET", path, headers=sent)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            response = self._conn.getresponse()
            self.status = response.status
            fields: dict[str, str] = {}
            while line := response.readline():
                line = line.decode().rstrip("\r\n")
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
                    continue
                if "id" in fields:
                    self.last_id = fields["id"]
                if "data" in fields:
                    self.events.put(Event(fields.get("event", "message"), fields.get("id"),
                                          json.loads(fields["data"]), time.perf_counter()))
                fields = {}
        except Exception:  # noqa: BLE001 - the socket was shut down under the read
            pass
        finally:
            self.events.put(None)

    def next(self, kind: str | None = None, timeout: float = 8.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or 'event'} within {timeout} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"stream ended (status {self.status}) before a {kind}")
            if kind is None or event.kind == kind:
                return event

    def quiet(self, kind: str, wait: float) -> list[Event]:
        """The events of ``kind`` that arrive within ``wait`` seconds."""
        found, deadline = [], time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            if event.kind == kind:
                found.append(event)
        return found

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        self._conn.close()


def cookies_for(base: str, agent) -> httpx.Cookies:
    with httpx.Client(base_url=base) as c:
        response = c.post("/api/v1/session", json={"login": agent.login, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return c.cookies


@dataclass
class Setting:
    base: str
    app: object
    mode: str


@pytest.fixture(params=["poll", "redis"])
def desk(request, session_factory, clock, tmp_path, people) -> Iterator[Setting]:
    """The desk behind a real server: without Redis (database poll) or with it (pub/sub)."""
    client = request.getfixturevalue("redis_client") if request.param == "redis" else None
    settings = load_settings({"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": ""})
    app = create_app(settings=settings, session_factory=session_factory,
                     cipher=PiiCipher(TEST_KEY), redis=client, clock=clock)
    uninstall = live_events.install(session_factory, client) if client is not None else None
    try:
        with serve(app) as base:
            yield Setting(base, app, request.param)
    finally:
        if uninstall is not None:
            uninstall()


@pytest.fixture
def owned_ticket(session_factory, people) -> tuple[int, str]:
    """A frontline ticket Li (l1) owns; Zhao (logistics, L2) may not see it."""
    with session_factory.begin() as s:
        ticket = new_ticket(s, Factory(s, PiiCipher(TEST_KEY)), subject="订单还没发货")
        ownership.claim(s, ticket_id=ticket.id, agent_id=people.desk.l1.id, now=NOW)
        return ticket.id, ticket.number


def customer_writes(session_factory, ticket_id: int, body: str) -> float:
    """Commit a customer message; the moment the commit returned."""
    with session_factory.begin() as s:
        tickets.add_customer_message(s, ticket_id=ticket_id, body=body, now=NOW)
    return time.perf_counter()


# --- the stream ---------------------------------------------------------------------------------
def test_a_customer_message_reaches_its_owner_live_and_no_other_team(
        desk, people, owned_ticket, session_factory) -> None:
    ticket_id, number = owned_ticket
    li = Stream(desk.base, cookies_for(desk.base, people.desk.l1))
    zhao = Stream(desk.base, cookies_for(desk.base, people.desk.l2))
    try:
        ready = li.next("ready")
        assert ready.data["mode"] == desk.mode and ready.id == ready.data["cursor"]
        zhao.next("ready")
        committed = {}
        for i in range(20):  # spaced off the poll's beat: arrivals fall anywhere in a cycle
            committed[f"第{i}次催：什么时候发货"] = customer_writes(
                session_factory, ticket_id, f"第{i}次催：什么时候发货")
            time.sleep(0.13)
        latencies = []
        for _ in committed:
            event = li.next("message")
            assert event.data["kind"] == "customer_message" and event.data["ticket_id"] == ticket_id
            body = event.data["text"].removeprefix(f"{number} 客户：")
            latencies.append(event.received - committed[body])
        assert li.next("notification").data["kind"] == "customer_message"  # Li owns it
        assert zhao.quiet("message", 1.5) == []
    finally:
        li.close()
        zhao.close()
    latencies.sort()
    print(f"\n[{desk.mode}, {session_factory.kw['bind'].dialect.name}] commit → event over "
          f"{len(latencies)} messages: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")


def test_a_restarted_stream_resumes_from_last_event_id_without_loss(
        desk, people, owned_ticket, session_factory) -> None:
    ticket_id, _ = owned_ticket
    cookies = cookies_for(desk.base, people.desk.l1)
    first = Stream(desk.base, cookies)
    first.next("ready")
    customer_writes(session_factory, ticket_id, "第一条")
    assert first.next("message").data["text"].endswith("第一条")
    first.next("notification")  # the last event of the batch carries the cursor
    first.close()
    resume_at = first.last_id
    assert resume_at

    for body in ("离线时的第二条", "离线时的第三条"):  # nobody connected meanwhile
        customer_writes(session_factory, ticket_id, body)
    again = Stream(desk.base, cookies, headers={"Last-Event-ID": resume_at})
    try:
        assert again.next("ready").id == resume_at
        texts = [again.next("message").data["text"] for _ in range(2)]
        assert [t.split("：")[-1] for t in texts] == ["离线时的第二条", "离线时的第三条"]
    finally:
        again.close()


def test_presence_shows_who_else_has_the_ticket_open(desk, people, owned_ticket) -> None:
    ticket_id, _ = owned_ticket
    li, wang = people.desk.l1, people.desk.l1b
    path = f"/api/v1/events?ticket={ticket_id}"
    li_page = Stream(desk.base, cookies_for(desk.base, li), path)
    wang_cookies = cookies_for(desk.base, wang)
    wang_page = Stream(desk.base, wang_cookies, path)
    try:
        li_page.next("ready")
        while li_page.next("presence").data["text"] == "":  # alone at first
            pass
        with httpx.Client(base_url=desk.base, cookies=wang_cookies) as c:
            listed = c.get(f"/api/v1/tickets/{ticket_id}/viewers").json()["viewers"]
        assert {v["name"] for v in listed} == {li.display_name, wang.display_name}
        hint = wang_page.next("presence").data
        while li.display_name not in hint["text"]:
            hint = wang_page.next("presence").data
        assert hint["text"] == f"{li.display_name} 也在查看此工单"
    finally:
        wang_page.close()
    hint = li_page.next("presence", timeout=8).data  # Wang left: the hint goes away
    while hint["text"]:
        hint = li_page.next("presence", timeout=8).data
    li_page.close()


def test_the_stream_checks_who_asks_and_what_they_may_see(app, people, owned_ticket) -> None:
    ticket_id, _ = owned_ticket
    anonymous = TestClient(app, base_url="http://desk.test")
    assert anonymous.get("/api/v1/events").status_code == 401
    assert anonymous.get("/events", follow_redirects=False).status_code == 303
    zhao = sign_in(app, people.desk.l2)
    assert zhao.get(f"/api/v1/events?ticket={ticket_id}").status_code == 404
    assert zhao.get(f"/api/v1/tickets/{ticket_id}/viewers").status_code == 404
    li = sign_in(app, people.desk.l1)
    assert li.get(f"/api/v1/tickets/{ticket_id}/viewers").json() == {"ticket_id": ticket_id,
                                                                    "viewers": []}
    paths = app.openapi()["paths"]
    assert "/api/v1/events" in paths and "/events" not in paths


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_viewer_expires_thirty_seconds_after_the_last_beat(store, request, session_factory,
                                                             people, owned_ticket) -> None:
    ticket_id, _ = owned_ticket
    presence = (live.RedisPresence(request.getfixturevalue("redis_client")) if store == "redis"
                else live.DatabasePresence(session_factory))
    li, wang = people.desk.l1, people.desk.l1b
    presence.beat(ticket_id=ticket_id, agent_id=li.id, connection="a", now=NOW)
    presence.beat(ticket_id=ticket_id, agent_id=li.id, connection="b", now=NOW)  # two tabs
    later = NOW.replace(second=20)
    presence.beat(ticket_id=ticket_id, agent_id=wang.id, connection="c", now=later)
    assert presence.viewers(ticket_id=ticket_id, now=later) == [wang.id, li.id]  # latest first
    presence.leave(ticket_id=ticket_id, agent_id=li.id, connection="a")
    assert li.id in presence.viewers(ticket_id=ticket_id, now=later)  # the other tab counts
    assert presence.viewers(ticket_id=ticket_id, now=NOW.replace(second=31)) == [wang.id]
    assert presence.viewers(ticket_id=ticket_id, now=NOW.replace(second=51)) == []


# --- the page's scripts -----------------------------------------------------------------------
def test_pages_load_only_vendored_files_and_nothing_inline(app) -> None:
    c = TestClient(app, base_url="http://desk.test")
    page = c.get("/login").text
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/static/vendor/htmx.min.js" defer>',
                       '<script src="/static/vendor/htmx-ext-sse.min.js" defer>',
                       '<script src="/static/desk.js" defer>']
    assert not re.search(r"\s(on\w+|style)=", page)
    assert '"includeIndicatorStyles": false' in page and '"allowEval": false' in page
    assert 'data-text-paused="已暂停"' in page and "data-stream" not in page  # signed out
    for path in ("/static/vendor/htmx.min.js", "/static/vendor/htmx-ext-sse.min.js",
                 "/static/desk.js"):
        response = c.get(path)
        assert response.status_code == 200 and "javascript" in response.headers["content-type"]
