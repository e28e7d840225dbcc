"""A fake widget gateway (test double) for the widget's browser tests.

It speaks the widget protocol of docs/gateway.md with canned behaviour and keeps history in
memory per visitor, so the widget's rendering, delivery states and reconnects are tested in a
real browser without Rasa, a database or the real gateway. It runs its own asyncio loop in a
background thread; every public method is called from the test's (synchronous) thread.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "bot" / "widget" / "static"
MAX_CHARS = 4000
ECHO_BUTTONS = [{"title": "好的 / OK", "payload": "/affirm"},
                {"title": "转人工 / Human", "payload": "/human"}]
ERROR_TEXTS = {
    "too_long": {"zh": "消息太长（服务器）。", "en": "Message too long (server)."},
    "rate_limited": {"zh": "发送太频繁，请稍后再试。", "en": "Too many messages, please wait a moment."},
    "bad_frame": {"zh": "无法识别的消息。", "en": "Unrecognised frame."},
    "unavailable": {"zh": "服务暂时不可用。", "en": "The service is briefly unavailable."},
}

T = TypeVar("T")


@dataclass
class Connection:
    """One WebSocket and what it has seen, so tests can check frame order per connection."""

    ws: web.WebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)
    visitor: str | None = None
    language: str = "en"


class FakeGateway:
    """Serves demo.html, widget.js/.css and /ws; echoes messages with two buttons.

    Special message texts steer it: ``slow …`` answers after 1 s (typing indicator visible),
    ``!toolong …`` is refused as too long (a server with a lower limit),
    ``noreceipt …`` is stored but its ``received`` frame is never sent (a lost receipt),
    ``!ratelimit`` is stored and then refused an answer, ``!unavailable …`` is refused unstored
    the first time; both ``error`` frames carry the message's client id, as the real gateway's do.
    ``!lost …`` is ignored the first time (a frame lost on a live socket: no answer at all).
    """

    def __init__(self, static_dir: Path = STATIC_DIR) -> None:
        self.static_dir = static_dir
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._accepting = True
        self._refused = 0
        self._next_id = 0
        self._connections: list[Connection] = []
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._message_frames: Counter[str] = Counter()

    # ---- lifecycle (test thread) ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True,
                                        name="fake-gateway")
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake gateway did not start")

    def stop(self) -> None:
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/widget.js", self._static)
        app.router.add_get("/widget.css", self._static)
        app.router.add_get("/ws", self._websocket)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here; port 0 picked a free one
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        await self._drop_all()
        if self._runner:
            await self._runner.cleanup()

    def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # ---- controls and observations (test thread) -------------------------------------------

    def drop_all(self) -> None:
        """Closes every socket server-side, as a gateway restart or a network cut would."""
        self._call(self._drop_all)

    def set_accepting(self, accepting: bool) -> None:
        """While False, /ws answers 503 so the widget stays disconnected."""
        async def set_() -> None:
            self._accepting = accepting
        self._call(set_)

    def push(self, visitor: str, text: str, *, kind: str = "bot", agent: str | None = None,
             buttons: list[dict[str, str]] | None = None) -> str:
        """Stores an outgoing entry for the visitor and sends it to their sockets."""
        async def push_() -> str:
            entry = self._entry("out", kind, text, buttons=buttons or [], agent=agent)
            await self._deliver(visitor, entry)
            return str(entry["id"])
        return self._call(push_)

    def frames(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every client frame so far, in arrival order, optionally of one type."""
        async def get() -> list[dict[str, Any]]:
            return [f for c in self._connections for f in c.frames
                    if type_ is None or f.get("type") == type_]
        return self._call(get)

    def connection_frames(self) -> list[list[dict[str, Any]]]:
        """Client frames grouped by connection, oldest connection first."""
        async def get() -> list[list[dict[str, Any]]]:
            return [list(c.frames) for c in self._connections]
        return self._call(get)

    def message_frames(self, client_id: str) -> int:
        """How many `message` frames carried this client id (resends included)."""
        async def get() -> int:
            return self._message_frames[client_id]
        return self._call(get)

    def history(self, visitor: str) -> list[dict[str, Any]]:
        async def get() -> list[dict[str, Any]]:
            return [dict(e) for e in self._history.get(visitor, [])]
        return self._call(get)

    def open_sockets(self) -> int:
        async def get() -> int:
            return sum(1 for c in self._connections if not c.ws.closed)
        return self._call(get)

    def refused(self) -> int:
        """Connection attempts refused while not accepting."""
        async def get() -> int:
            return self._refused
        return self._call(get)

    # ---- HTTP -----------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        page = (self.static_dir / "demo.html").read_text(encoding="utf-8")
        query = request.query
        page = (page.replace("__KEFU_TOKEN__", html.escape(query.get("token", ""), quote=True))
                .replace("__KEFU_LANG__", html.escape(query.get("lang", ""), quote=True))
                .replace("__KEFU_SIGNED_IN__",
                         html.escape(query.get("signed_in", "未登录 / Not signed in"))))
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.static_dir / request.path.lstrip("/"),
                                headers={"Cache-Control": "no-store"})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:
            self._refused += 1
            return web.Response(status=503, text="not accepting")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        conn = Connection(ws)
        self._connections.append(conn)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await self._error(conn, "bad_frame")
                continue
            conn.frames.append(frame)
            await self._handle(conn, frame)
        return ws

    # ---- protocol ---------------------------------------------------------------------------

    async def _handle(self, conn: Connection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "hello":
            conn.visitor = str(frame.get("visitor"))
            conn.language = "zh" if frame.get("language") == "zh" else "en"
            history = self._history.setdefault(conn.visitor, [])
            await conn.ws.send_json({"type": "welcome", "conversation": f"widget:{conn.visitor}",
                                     "verified": bool(frame.get("token")),
                                     "language": conn.language, "history": history[-200:]})
        elif conn.visitor is None:
            await self._error(conn, "bad_frame")
        elif kind == "message":
            await self._on_message(conn, frame)
        # "ack" frames are only recorded.

    async def _on_message(self, conn: Connection, frame: dict[str, Any]) -> None:
        assert conn.visitor is not None
        client_id = str(frame.get("client_id"))
        text = str(frame.get("text", ""))
        self._message_frames[client_id] += 1
        history = self._history[conn.visitor]
        stored = next((e for e in history if e.get("client_id") == client_id), None)
        if stored is not None:  # a resend: confirmed again (no id, as the real gateway does)
            await conn.ws.send_json({"type": "received", "client_id": client_id, "id": None})
            return
        if len(text) > MAX_CHARS or text.startswith("!toolong"):
            await self._error(conn, "too_long", client_id)
            return
        if text.startswith("!lost") and self._message_frames[client_id] == 1:
            return
        if text.startswith("!unavailable") and self._message_frames[client_id] == 1:
            await self._error(conn, "unavailable", client_id)  # not stored: try again
            return
        entry = self._entry("in", "customer", text, client_id=client_id)
        history.append(entry)
        if not text.startswith("noreceipt"):
            await conn.ws.send_json({"type": "received", "client_id": client_id,
                                     "id": entry["id"]})
        if text == "!ratelimit":  # like the real gateway: stored, then refused an answer
            await self._error(conn, "rate_limited", client_id)
            return
        await self._broadcast(conn.visitor, {"type": "typing", "on": True})
        await asyncio.sleep(1.0 if text.startswith("slow") else 0.05)
        await self._deliver(conn.visitor, self._entry("out", "bot", f"echo: {text}",
                                                      buttons=ECHO_BUTTONS))

    def _entry(self, direction: str, kind: str, text: str, *, client_id: str | None = None,
               buttons: list[dict[str, str]] | None = None,
               agent: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        entry: dict[str, Any] = {"id": f"{direction}-{self._next_id}", "direction": direction,
                                 "kind": kind, "text": text, "buttons": buttons or [],
                                 "at": datetime.now(timezone.utc).isoformat()}
        if client_id:
            entry["client_id"] = client_id
        if agent:
            entry["agent"] = agent
        return entry

    async def _deliver(self, visitor: str, entry: dict[str, Any]) -> None:
        self._history.setdefault(visitor, []).append(entry)
        await self._broadcast(visitor, {"type": "message", **entry})

    async def _broadcast(self, visitor: str, frame: dict[str, Any]) -> None:
        for conn in self._connections:
            if conn.visitor == visitor and not conn.ws.closed:
                try:
                    await conn.ws.send_json(frame)
                except ConnectionError:
                    log.debug("fake gateway: socket of %s went away", visitor)

    async def _error(self, conn: Connection, code: str, client_id: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code,
                                 "text": ERROR_TEXTS[code][conn.language]}
        if client_id:
            frame["client_id"] = client_id
        await conn.ws.send_json(frame)

    async def _drop_all(self) -> None:
        for conn in self._connections:
            if not conn.ws.closed:
                await conn.ws.close()
