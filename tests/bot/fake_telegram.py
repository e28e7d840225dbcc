"""An offline Telegram Bot API server for tests.

The real python-telegram-bot ``Application`` talks to it over HTTP on 127.0.0.1, so the gateway's
Telegram channel is tested through PTB's own request encoding, long polling and error mapping
instead of mocks. The server is aiohttp on its own event loop in a background thread: sync tests
and code under test that runs its own asyncio loop can both use it.

    with FakeTelegram() as tg:
        app = (ApplicationBuilder().token(tg.token)
               .base_url(tg.base_url).base_file_url(tg.base_file_url).build())
        tg.push_text(42, "你好")
        ...
        tg.wait_for_sent(42, 1)

What PTB sends (v22): every method is a POST to ``<base_url><token>/<method>``; parameters go
form-urlencoded (multipart only when a file is uploaded), string values raw and every other value
JSON-encoded (``chat_id=42``, ``reply_markup={"inline_keyboard": ...}``, ``disable_notification=true``).
The fake decodes these back to Python values; JSON bodies and GET query strings work as well.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Parameters that are plain strings on the wire: never JSON-decode them ("123" stays "123").
_STRING_PARAMS = frozenset({
    "text", "caption", "data", "url", "secret_token", "callback_query_id", "file_id", "parse_mode",
    "action", "language_code", "inline_message_id", "ip_address", "business_connection_id",
    "message_effect_id", "query", "description", "short_description", "name", "emoji", "title",
})

# Parameters whose value is a JSON object or array.
_JSON_PARAMS = frozenset({
    "reply_markup", "entities", "caption_entities", "reply_parameters", "link_preview_options",
    "allowed_updates", "commands", "scope",
})

_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a current content and reply markup of the message")


class _ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional ``parameters``."""

    def __init__(self, status: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    delay: float
    remaining: int


@dataclass
class _QueuedUpdate:
    update: JsonDict
    forced: bool = False  # pushed with push_raw: delivered once even below the current offset
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _decode_form_value(key: str, raw: str) -> Any:
    """Undo PTB's form encoding: non-string values were JSON-dumped."""
    if key in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _as_int(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


class FakeTelegram:
    """A fake Bot API: records what the bot sends, feeds it updates, fails on demand."""

    def __init__(self, token: str = "123456:TEST", *, bot_username: str = "kefu_test_bot",
                 bot_first_name: str = "Kefu Test Bot") -> None:
        self.token = token
        bot_id = token.split(":", 1)[0]
        self.bot_user: JsonDict = {
            "id": int(bot_id) if bot_id.isdigit() else 123456, "is_bot": True,
            "first_name": bot_first_name, "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._updates_event: asyncio.Event | None = None
        self._closing = False
        self._port = 0

        self._update_ids = itertools.count(1001)
        self._last_update_id = 1000
        self._callback_ids = itertools.count(1)
        self._queue: list[_QueuedUpdate] = []
        self._users: dict[int, JsonDict] = {}
        self._next_message_id: dict[int, int] = {}
        self._bot_messages: dict[tuple[int, int], JsonDict] = {}
        self._last_bot_message: dict[int, int] = {}
        self._known_callback_ids: set[str] = set()
        self._files: dict[str, JsonDict] = {}
        self._file_bytes: dict[str, bytes] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._blocked: set[int] = set()
        self._calls: list[tuple[str, JsonDict]] = []
        self._sent: list[JsonDict] = []
        self._callback_answers: list[JsonDict] = []
        self._chat_actions: list[JsonDict] = []
        self._commands: dict[str, list[JsonDict]] = {}
        self._webhook: JsonDict | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeTelegram:
        """Serve on a free port of 127.0.0.1; returns self."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - re-raised in start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._closing = False
        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        log.debug("fake Telegram listening on 127.0.0.1:%s", self._port)
        return self

    def stop(self) -> None:
        """Stop serving; pending long polls end at once."""
        if self._thread is None or self._loop is None:
            return
        self._closing = True
        loop = self._loop
        loop.call_soon_threadsafe(self._wake_pollers)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    async def _serve(self) -> None:
        self._updates_event = asyncio.Event()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a long poll whose client went away must not keep running.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()

    def _wake_pollers(self) -> None:
        if self._updates_event is not None:
            self._updates_event.set()

    def _notify_updates(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._wake_pollers)

    # ------------------------------------------------------------------ test setup

    def add_file(self, file_id: str, data: bytes, file_path: str = "photos/file_0.jpg") -> JsonDict:
        """Make ``getFile(file_id)`` answer ``file_path`` and serve ``data`` under it."""
        entry = {"file_id": file_id, "file_unique_id": f"u-{file_id}"[:32],
                 "file_size": len(data), "file_path": file_path}
        with self._lock:
            self._files[file_id] = entry
            self._file_bytes[file_path] = bytes(data)
        return dict(entry)

    def fail_next(self, method: str, times: int = 1, *, status: int | None = None,
                  error_code: int | None = None, description: str | None = None,
                  retry_after: int | None = None, delay: float = 0.0) -> None:
        """Make the next ``times`` calls of ``method`` fail like Telegram does.

        ``status`` (alias ``error_code``) defaults to 500, or 429 when ``retry_after`` is given
        (then ``parameters.retry_after`` is set and PTB raises ``RetryAfter``). PTB maps 400 to
        ``BadRequest``, 403 to ``Forbidden``, 401/404 to ``InvalidToken``, 409 to ``Conflict``
        and anything else to ``NetworkError``. ``delay`` seconds pass before the answer, enough
        to trigger PTB's ``TimedOut`` when it exceeds the read timeout (5 s by default).
        """
        code = status or error_code or (429 if retry_after is not None else 500)
        if description is None:
            if code == 429:
                description = f"Too Many Requests: retry after {retry_after or 1}"
            elif code == 400:
                description = "Bad Request: injected failure"
            elif code == 403:
                description = "Forbidden: bot was blocked by the user"
            else:
                try:
                    description = HTTPStatus(code).phrase
                except ValueError:
                    description = "Unknown error"
        fault = _Fault(code, description, retry_after, delay, times)
        with self._lock:
            self._faults.setdefault(method.lower(), []).append(fault)

    def block_user(self, chat_id: int) -> None:
        """From now on sending to ``chat_id`` answers 403 "bot was blocked by the user"."""
        with self._lock:
            self._blocked.add(int(chat_id))

    # ------------------------------------------------------------------ update builders

    def _user(self, user_id: int, first_name: str | None, language_code: str | None) -> JsonDict:
        profile = self._users.setdefault(int(user_id), {"first_name": "Zhang", "language_code": "zh"})
        if first_name is not None:
            profile["first_name"] = first_name
        if language_code is not None:
            profile["language_code"] = language_code
        return {"id": int(user_id), "is_bot": False, "first_name": profile["first_name"],
                "language_code": profile["language_code"]}

    def _chat(self, chat_id: int) -> JsonDict:
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "type": kind, "title": "Test group"}
        profile = self._users.get(chat_id, {"first_name": "Zhang"})
        return {"id": chat_id, "type": "private", "first_name": profile["first_name"]}

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _incoming(self, user_id: int, chat_id: int | None, first_name: str | None,
                  language_code: str | None) -> JsonDict:
        user = self._user(user_id, first_name, language_code)
        chat = int(chat_id) if chat_id is not None else int(user_id)
        return {"message_id": self._new_message_id(chat), "from": user, "chat": self._chat(chat),
                "date": int(time.time())}

    def _enqueue(self, update: JsonDict, *, forced: bool = False) -> JsonDict:
        """Store a copy (callers may mutate theirs) and wake long polls; lock held by caller."""
        stored = copy.deepcopy(update)
        self._remember_callback_id(stored)
        self._queue.append(_QueuedUpdate(stored, forced=forced))
        self._notify_updates()
        return copy.deepcopy(stored)

    def _remember_callback_id(self, update: JsonDict) -> None:
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query:
            self._known_callback_ids.add(str(query["id"]))

    def _new_update(self, **payload: Any) -> JsonDict:
        update_id = next(self._update_ids)
        self._last_update_id = max(self._last_update_id, update_id)
        return {"update_id": update_id, **payload}

    def push_text(self, user_id: int, text: str, *, first_name: str | None = "Zhang",
                  language_code: str | None = "zh", chat_id: int | None = None) -> JsonDict:
        """A text message from ``user_id`` (private chat unless ``chat_id``); "/cmd" gets a
        bot_command entity, without which PTB's ``CommandHandler`` ignores it."""
        with self._lock:
            message = self._incoming(user_id, chat_id, first_name, language_code)
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0,
                                        "length": _utf16_len(command)}]
            return self._enqueue(self._new_update(message=message))

    def push_callback(self, user_id: int, data: str, *, message_id: int | None = None,
                      chat_id: int | None = None) -> JsonDict:
        """A button press on one of the bot's messages (default: its last one in that chat)."""
        with self._lock:
            chat = int(chat_id) if chat_id is not None else int(user_id)
            user = self._user(user_id, None, None)
            if message_id is None:
                message_id = self._last_bot_message.get(chat)
            message = self._bot_messages.get((chat, message_id)) if message_id is not None else None
            if message is None:
                message = self._store_bot_message(chat, {"text": "…"}, message_id=message_id)
            query = {"id": f"cbq-{next(self._callback_ids)}", "from": user,
                     "chat_instance": f"ci-{chat}", "data": data, "message": copy.deepcopy(message)}
            return self._enqueue(self._new_update(callback_query=query))

    def push_contact(self, user_id: int, phone_number: str, *, contact_user_id: int | None = None,
                     first_name: str | None = None) -> JsonDict:
        """A shared contact; ``contact_user_id`` None means the sender's own (the normal case of
        a "share my phone number" button)."""
        with self._lock:
            message = self._incoming(user_id, None, None, None)
            contact: JsonDict = {"phone_number": phone_number,
                                 "first_name": first_name or message["from"]["first_name"]}
            contact["user_id"] = int(contact_user_id if contact_user_id is not None else user_id)
            message["contact"] = contact
            return self._enqueue(self._new_update(message=message))

    def push_photo(self, user_id: int, file_id: str, *, caption: str | None = None) -> JsonDict:
        """A photo; the largest size (last) carries ``file_id``, a thumbnail ``<file_id>-thumb``
        (``getFile`` resolves both to the bytes registered with ``add_file``)."""
        with self._lock:
            message = self._incoming(user_id, None, None, None)
            size = self._files.get(file_id, {}).get("file_size")
            big: JsonDict = {"file_id": file_id, "file_unique_id": f"u-{file_id}"[:32],
                             "width": 1280, "height": 960}
            thumb: JsonDict = {"file_id": f"{file_id}-thumb",
                               "file_unique_id": f"t-{file_id}"[:32], "width": 90, "height": 68}
            if size is not None:
                big["file_size"] = size
                thumb["file_size"] = min(size, 1024)
            message["photo"] = [thumb, big]
            if caption is not None:
                message["caption"] = caption
            return self._enqueue(self._new_update(message=message))

    def push_sticker(self, user_id: int, *, emoji: str = "👍") -> JsonDict:
        """A sticker: a message without text, for "I can only read text" paths."""
        with self._lock:
            message = self._incoming(user_id, None, None, None)
            message["sticker"] = {"file_id": "sticker-1", "file_unique_id": "st-1",
                                  "type": "regular", "width": 512, "height": 512,
                                  "is_animated": False, "is_video": False, "emoji": emoji}
            return self._enqueue(self._new_update(message=message))

    def push_raw(self, update: JsonDict) -> JsonDict:
        """Enqueue ``update`` as is, e.g. a duplicate with the SAME update_id.

        Unlike Telegram, such an update is delivered once even if its update_id is already below
        the poller's offset: that is how a redelivery is simulated. Without update_id one is
        assigned.
        """
        with self._lock:
            update = copy.deepcopy(update)
            if "update_id" not in update:
                update = self._new_update(**update)
            elif int(update["update_id"]) > self._last_update_id:
                self._last_update_id = int(update["update_id"])
                self._update_ids = itertools.count(self._last_update_id + 1)
            return self._enqueue(update, forced=True)

    @property
    def pending_updates(self) -> int:
        """Updates not confirmed yet by a getUpdates offset."""
        with self._lock:
            return len(self._queue)

    # ------------------------------------------------------------------ webhook delivery

    def post_webhook(self, update: JsonDict, *, secret_token: str | None = None,
                     timeout: float = 10.0) -> int:
        """POST ``update`` to the URL registered by setWebhook, as Telegram would; returns the
        HTTP status. Blocking: from async code use ``post_webhook_async``."""
        with self._lock:
            if self._webhook is None:
                raise AssertionError("no webhook registered (setWebhook was not called)")
            url = self._webhook["url"]
            self._remember_callback_id(update)
        headers = {"Content-Type": "application/json"}
        if secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    async def post_webhook_async(self, update: JsonDict, *, secret_token: str | None = None,
                                 timeout: float = 10.0) -> int:
        """``post_webhook`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.post_webhook, update, secret_token=secret_token,
                                       timeout=timeout)

    # ------------------------------------------------------------------ inspection

    def sent(self, chat_id: int | None = None) -> list[JsonDict]:
        """Successful sendMessage calls in order: decoded params plus the ``message_id`` given."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._sent
                    if chat_id is None or m.get("chat_id") == chat_id]

    def wait_for_sent(self, chat_id: int, count: int, timeout: float = 20.0) -> list[JsonDict]:
        """Block until at least ``count`` messages were sent to ``chat_id``; returns them all.
        Blocking: from a coroutine on the loop running the bot use ``wait_for_sent_async``."""
        return self._wait(lambda: self.sent(chat_id), count, timeout,
                          f"{count} message(s) to chat {chat_id}")

    async def wait_for_sent_async(self, chat_id: int, count: int,
                                  timeout: float = 20.0) -> list[JsonDict]:
        return await asyncio.to_thread(self.wait_for_sent, chat_id, count, timeout)

    def calls(self, method: str) -> list[JsonDict]:
        """Every request of ``method`` (case-insensitive) in order, failed ones included."""
        with self._lock:
            return [copy.deepcopy(p) for m, p in self._calls if m == method.lower()]

    def wait_for_calls(self, method: str, count: int, timeout: float = 20.0) -> list[JsonDict]:
        """Block until ``method`` was called at least ``count`` times."""
        return self._wait(lambda: self.calls(method), count, timeout, f"{count} {method} call(s)")

    async def wait_for_calls_async(self, method: str, count: int,
                                   timeout: float = 20.0) -> list[JsonDict]:
        return await asyncio.to_thread(self.wait_for_calls, method, count, timeout)

    def _wait(self, get: Callable[[], list[JsonDict]], count: int, timeout: float,
              what: str) -> list[JsonDict]:
        deadline = time.monotonic() + timeout
        while True:
            items = get()
            if len(items) >= count:
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"waited {timeout}s for {what}; got {len(items)}: {items!r}")
            with self._cond:
                self._cond.wait(min(remaining, 0.2))

    @property
    def callback_answers(self) -> list[JsonDict]:
        """answerCallbackQuery params, in order."""
        with self._lock:
            return copy.deepcopy(self._callback_answers)

    @property
    def chat_actions(self) -> list[JsonDict]:
        """sendChatAction params, in order."""
        with self._lock:
            return copy.deepcopy(self._chat_actions)

    @property
    def webhook(self) -> JsonDict | None:
        """The registered webhook (url, secret_token, allowed_updates, ...) or None."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    def message(self, chat_id: int, message_id: int) -> JsonDict | None:
        """The bot's message as it is now (after edits), None if unknown or deleted."""
        with self._lock:
            found = self._bot_messages.get((int(chat_id), int(message_id)))
            return copy.deepcopy(found)

    def commands(self, *, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """The command list set by setMyCommands for that scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.lstrip("/").split("/")
        if parts[0] == "file" and len(parts) >= 3 and parts[1].startswith("bot"):
            return self._download(parts[1][3:], "/".join(parts[2:]))
        if len(parts) != 2 or not parts[0].startswith("bot") or not parts[1]:
            return self._error(_ApiError(404, "Not Found"))
        token, method = parts[0][3:], parts[1].lower()
        if token != self.token:
            return self._error(_ApiError(401, "Unauthorized"))
        try:
            params = await self._params(request)
        except ValueError as exc:
            return self._error(_ApiError(400, f"Bad Request: {exc}"))
        with self._cond:
            self._calls.append((method, copy.deepcopy(params)))
            self._cond.notify_all()
            fault = self._take_fault(method)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            extra = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
            return self._error(_ApiError(fault.status, fault.description, extra))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(_ApiError(404, "Not Found: method not found"))
        try:
            if method == "getupdates":
                result = await self._m_getupdates(params)
            else:
                with self._cond:
                    result = handler(params)
                    self._cond.notify_all()
        except _ApiError as exc:
            return self._error(exc)
        return self._json(200, {"ok": True, "result": result})

    async def _params(self, request: web.Request) -> JsonDict:
        params: JsonDict = {k: _decode_form_value(k, v) for k, v in request.query.items()}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("JSON body must be an object")
                params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename,
                                       "content_type": value.content_type,
                                       "data": value.file.read()}
                    else:
                        params[key] = _decode_form_value(key, str(value))
        for key in ("chat_id", "message_id", "user_id", "offset", "limit", "timeout", "cache_time"):
            if key in params:
                params[key] = _as_int(params[key])
        for key in _JSON_PARAMS:  # some clients JSON-encode these even inside a JSON body
            if isinstance(params.get(key), str):
                params[key] = _decode_form_value(key, params[key])
        return params

    def _take_fault(self, method: str) -> _Fault | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.pop(0)
        return fault

    @staticmethod
    def _json(status: int, body: JsonDict) -> web.Response:
        return web.Response(status=status, content_type="application/json",
                            text=json.dumps(body, ensure_ascii=False))

    def _error(self, error: _ApiError) -> web.Response:
        body: JsonDict = {"ok": False, "error_code": error.status, "description": error.description}
        if error.parameters:
            body["parameters"] = error.parameters
        return self._json(error.status, body)

    def _download(self, token: str, file_path: str) -> web.Response:
        if token != self.token:
            return self._error(_ApiError(401, "Unauthorized"))
        with self._lock:
            data = self._file_bytes.get(file_path)
        if data is None:
            return self._error(_ApiError(404, "Not Found"))
        return web.Response(body=data, content_type="application/octet-stream")

    # ------------------------------------------------------------------ Bot API methods
    # Each _m_<method> runs on the server loop with the lock held (except getUpdates).

    def _m_getme(self, params: JsonDict) -> JsonDict:
        return dict(self.bot_user)

    def _m_logout(self, params: JsonDict) -> bool:
        return True

    def _m_close(self, params: JsonDict) -> bool:
        return True

    async def _m_getupdates(self, params: JsonDict) -> list[JsonDict]:
        """Long polling with Telegram's offset semantics; results sorted by update_id."""
        with self._lock:
            if self._webhook is not None:
                raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is "
                                     "active; use deleteWebhook to delete the webhook first")
            self._confirm(params.get("offset"))
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        assert self._updates_event is not None
        deadline = time.monotonic() + timeout
        while True:
            self._updates_event.clear()
            with self._lock:
                batch = sorted(self._queue, key=lambda q: q.update_id)[:limit]
                for queued in batch:
                    queued.delivered = True
                result = [copy.deepcopy(q.update) for q in batch]
            remaining = deadline - time.monotonic()
            if result or self._closing or remaining <= 0:
                return result
            try:
                await asyncio.wait_for(self._updates_event.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int) or offset == 0:
            return
        if offset < 0:
            self._queue = self._queue[offset:]
            return
        self._queue = [q for q in self._queue
                       if q.update_id >= offset or (q.forced and not q.delivered)]

    def _m_setwebhook(self, params: JsonDict) -> bool:
        url = params.get("url") or ""
        if not url:
            self._webhook = None
            return True
        self._webhook = {key: params.get(key) for key in (
            "url", "secret_token", "allowed_updates", "max_connections", "drop_pending_updates",
            "ip_address")}
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _m_deletewebhook(self, params: JsonDict) -> bool:
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _m_getwebhookinfo(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {"url": "", "has_custom_certificate": False,
                          "pending_update_count": len(self._queue)}
        if self._webhook is not None:
            info["url"] = self._webhook["url"]
            if self._webhook.get("max_connections"):
                info["max_connections"] = self._webhook["max_connections"]
            if self._webhook.get("allowed_updates") is not None:
                info["allowed_updates"] = self._webhook["allowed_updates"]
        return info

    def _require_chat(self, params: JsonDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    @staticmethod
    def _check_markup(markup: Any) -> JsonDict | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    @staticmethod
    def _check_text(text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return text

    def _store_bot_message(self, chat_id: int, fields: JsonDict,
                           message_id: int | None = None) -> JsonDict:
        if message_id is None:
            message_id = self._new_message_id(chat_id)
        message = {"message_id": message_id, "from": dict(self.bot_user),
                   "chat": self._chat(chat_id), "date": int(time.time()), **fields}
        self._bot_messages[(chat_id, message_id)] = message
        self._last_bot_message[chat_id] = message_id
        return message

    def _m_sendmessage(self, params: JsonDict) -> JsonDict:
        chat_id = self._require_chat(params)
        text = self._check_text(params.get("text"))
        markup = self._check_markup(params.get("reply_markup"))
        fields: JsonDict = {"text": text}
        if params.get("entities"):
            fields["entities"] = params["entities"]
        if markup is not None and "inline_keyboard" in markup:
            fields["reply_markup"] = markup  # Telegram echoes only inline keyboards
        message = self._store_bot_message(chat_id, fields)
        self._sent.append({**copy.deepcopy(params), "message_id": message["message_id"]})
        return copy.deepcopy(message)

    def _m_sendchataction(self, params: JsonDict) -> bool:
        self._require_chat(params)
        if not params.get("action"):
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        self._chat_actions.append(copy.deepcopy(params))
        return True

    def _m_answercallbackquery(self, params: JsonDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._known_callback_ids:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired "
                                 "or query ID is invalid")
        self._callback_answers.append(copy.deepcopy(params))
        return True

    def _edited(self, params: JsonDict) -> JsonDict:
        if params.get("inline_message_id"):
            raise _ApiError(400, "Bad Request: inline messages are not supported by the fake")
        chat_id = self._require_chat(params)
        message = self._bot_messages.get((chat_id, _as_int(params.get("message_id"))))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    @staticmethod
    def _set_markup(message: JsonDict, markup: JsonDict | None) -> None:
        if markup is not None and "inline_keyboard" in markup and markup["inline_keyboard"]:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)

    def _m_editmessagetext(self, params: JsonDict) -> JsonDict:
        message = self._edited(params)
        text = self._check_text(params.get("text"))
        markup = self._check_markup(params.get("reply_markup"))
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise _ApiError(400, _NOT_MODIFIED)
        message["text"] = text
        self._set_markup(message, markup)  # no reply_markup: the keyboard goes away
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_editmessagereplymarkup(self, params: JsonDict) -> JsonDict:
        message = self._edited(params)
        markup = self._check_markup(params.get("reply_markup"))
        wanted = markup if markup and markup.get("inline_keyboard") else None
        if wanted == message.get("reply_markup"):
            raise _ApiError(400, _NOT_MODIFIED)
        self._set_markup(message, markup)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_deletemessage(self, params: JsonDict) -> bool:
        chat_id = self._require_chat(params)
        key = (chat_id, _as_int(params.get("message_id")))
        if self._bot_messages.pop(key, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        return True

    def _m_getfile(self, params: JsonDict) -> JsonDict:
        file_id = str(params.get("file_id") or "")
        entry = self._files.get(file_id)
        if entry is None and file_id.endswith("-thumb"):
            entry = self._files.get(file_id[: -len("-thumb")])
        if entry is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {**entry, "file_id": file_id}

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> str:
        scope = scope or {"type": "default"}
        return json.dumps([scope, language_code or ""], sort_keys=True)

    def _m_setmycommands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not command.get("command") \
                    or not command.get("description"):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = copy.deepcopy(commands)
        return True

    def _m_getmycommands(self, params: JsonDict) -> list[JsonDict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _m_deletemycommands(self, params: JsonDict) -> bool:
        self._commands.pop(self._commands_key(params.get("scope"), params.get("language_code")), None)
        return True
