"""The real gateway (``python -m bot``) for tests, next to a real assistant (tests/assistant/live.py).

``GatewayProcess`` runs the gateway as `make run` does, as a child process on a free port,
over the same SQLite demo shop as the assistant; ``WidgetClient`` speaks the widget's
WebSocket protocol (docs/gateway.md) like the browser widget does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bot.rasa_config import ROOT
from tests.assistant.live import LiveAssistant, free_port


class GatewayProcess:
    def __init__(self, live: LiveAssistant, *, extra_env: dict[str, str] | None = None,
                 name: str = "gateway") -> None:
        self.live = live
        self.port = free_port()
        self.env = dict(live.env, KEFU_GATEWAY_PORT=str(self.port),
                        KEFU_RASA_URL=live.settings.rasa_url, KEFU_WIDGET_SECRET="test-secret",
                        KEFU_OUTBOX_INTERVAL="0.2", KEFU_DEMO_PAGE="on",
                        PYTHONPATH=str(ROOT))
        self.env.update(extra_env or {})
        self.log_path = live.var / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 60) -> GatewayProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=self.env,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway did not come up:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        head, _, tail = key.partition("{")
        if head != name:
            continue
        got = ",".join(sorted(tail.rstrip("}").split(","))) if tail else ""
        if got == want:
            return float(value)
    return 0.0


class WidgetClient:
    """One browser tab of the widget, in asyncio."""

    def __init__(self, ws_url: str, *, visitor: str | None = None, token: str | None = None,
                 language: str = "zh") -> None:
        self.ws_url, self.token, self.language = ws_url, token, language
        self.visitor = visitor or f"v-{uuid.uuid4()}"
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []  # outgoing entries received after welcome
        self.received: dict[str, str | None] = {}  # client_id -> in-id
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self) -> dict[str, Any]:
        self.session = self.session or aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url)
        await self.ws.send_json({"type": "hello", "visitor": self.visitor, "token": self.token,
                                 "language": self.language})
        first = await self.ws.receive_json(timeout=30)
        assert first["type"] == "welcome", first
        self.welcome = first
        self._reader = asyncio.create_task(self._read())
        return first

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            self.frames.append(frame)
            if frame["type"] == "message":
                self.messages.append(frame)
            elif frame["type"] == "received":
                self.received[frame["client_id"]] = frame.get("id")
            self._changed.set()

    async def send(self, text: str, *, payload: str | None = None,
                   client_id: str | None = None) -> str:
        assert self.ws is not None
        client_id = client_id or f"m-{uuid.uuid4()}"
        frame: dict[str, Any] = {"type": "message", "client_id": client_id, "text": text}
        if payload:
            frame["payload"] = payload
        await self.ws.send_json(frame)
        return client_id

    async def wait_for(self, predicate, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; frames so far: {self.frames[-10:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 1.0))
            except asyncio.TimeoutError:
                pass

    async def wait_messages(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda c: len(c.messages) >= count, timeout)
        return self.messages

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        self.ws = self.session = None


def texts_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def demo_customer(database_url: str, nth: int = 0) -> tuple[int, str]:
    """The ``nth`` demo customer who has orders: (id, name)."""
    from sqlalchemy import func, select

    from ticketing.core.db import make_engine, make_session_factory
    from ticketing.core.models import Customer, Order

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            row = session.execute(
                select(Customer.id, Customer.name).join(Order, Order.customer_id == Customer.id)
                .where(Customer.phone_enc.is_not(None))
                .group_by(Customer.id, Customer.name).having(func.count(Order.id) >= 2)
                .order_by(Customer.id).offset(nth).limit(1)).one()
            return int(row[0]), str(row[1])
    finally:
        engine.dispose()


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _factory(database_url: str):
    from ticketing.core.db import make_engine, make_session_factory

    engine = make_engine(database_url)
    return engine, make_session_factory(engine)


def demo_phone(live: LiveAssistant, customer_id: int) -> str:
    """The demo customer's phone in clear (tests only: it is stored encrypted)."""
    from ticketing.core.models import Customer
    from ticketing.core.pii import PiiCipher
    from ticketing.core.settings import load_settings

    cipher = PiiCipher(load_settings(live.env).pii_key)
    engine, factory = _factory(live.database_url)
    try:
        with factory() as session:
            customer = session.get(Customer, customer_id)
            return cipher.decrypt(customer.phone_enc, field="phone")
    finally:
        engine.dispose()


class Desk:
    """What an agent does at the desk, through the real ticketing services."""

    def __init__(self, database_url: str) -> None:
        self.engine, self.factory = _factory(database_url)

    def close(self) -> None:
        self.engine.dispose()

    def handed_off_ticket(self, conversation_id: str) -> int | None:
        from ticketing.desk import handoffs

        with self.factory() as session:
            ticket = handoffs.handed_off_ticket(session, conversation_id=conversation_id)
            return ticket.id if ticket is not None else None

    def _agent_for(self, session, ticket) -> int:
        from sqlalchemy import select

        from ticketing.desk import ownership
        from ticketing.core.models import Agent, Role

        if ticket.owner_id is None:
            agent = session.scalars(select(Agent).where(Agent.role == Role.SUPERVISOR)
                                    .order_by(Agent.id).limit(1)).one()
            ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id)
            return agent.id
        return ticket.owner_id

    def reply(self, ticket_id: int, body: str) -> None:
        from ticketing.desk import tickets

        with self.factory.begin() as session:
            ticket = tickets.get_ticket(session, ticket_id)
            tickets.agent_reply(session, ticket_id=ticket_id,
                                agent_id=self._agent_for(session, ticket), body=body)

    def solve(self, ticket_id: int, resolution: str) -> None:
        from ticketing.desk import tickets

        with self.factory.begin() as session:
            ticket = tickets.get_ticket(session, ticket_id)
            tickets.solve(session, ticket_id=ticket_id, agent_id=self._agent_for(session, ticket),
                          resolution=resolution)

    def thread(self, ticket_id: int) -> list[tuple[str, str, list]]:
        from sqlalchemy import select

        from ticketing.core.models import TicketMessage

        with self.factory() as session:
            return [(m.author_type, m.body, list(m.attachments or [])) for m in session.scalars(
                select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)
                .order_by(TicketMessage.id))]

    def survey_score(self, ticket_id: int) -> int | None:
        from ticketing.desk import csat

        with self.factory() as session:
            survey = csat.survey_for_ticket(session, ticket_id=ticket_id)
            return survey.score if survey is not None else None

    def inbound(self, conversation_id: str) -> list[tuple[str, str | None]]:
        from sqlalchemy import select

        from ticketing.core.models import InboundMessage

        with self.factory() as session:
            return [(m.text, m.route) for m in session.scalars(
                select(InboundMessage).where(InboundMessage.conversation_id == conversation_id)
                .order_by(InboundMessage.id))]
