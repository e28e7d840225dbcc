"""The fake Bot API speaks well enough for the real python-telegram-bot ``Application``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.bot.fake_telegram import FakeTelegram

pytestmark = pytest.mark.timeout(20)

USER = 42
KEYBOARD = {"inline_keyboard": [[{"text": "好的 OK", "callback_data": "ok:1"}]]}


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def build_app(tg: FakeTelegram) -> Application:
    return (ApplicationBuilder().token(tg.token)
            .base_url(tg.base_url).base_file_url(tg.base_file_url).build())


def bot_for(tg: FakeTelegram, token: str | None = None) -> Bot:
    return Bot(token or tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)


@asynccontextmanager
async def polling(app: Application) -> AsyncIterator[Application]:
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.05, timeout=1)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.effective_chat is not None
    await context.bot.send_chat_action(update.effective_chat.id, ChatAction.TYPING)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("好的 OK", callback_data="ok:1")]])
    await update.message.reply_text(f"echo: {update.message.text}", reply_markup=markup)


def test_text_echo_with_keyboard_then_callback_is_answered(tg: FakeTelegram) -> None:
    seen: list[Any] = []

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        seen.append(query)
        await query.answer("收到 Got it")
        await query.edit_message_reply_markup(reply_markup=None)

    async def main() -> None:
        app = build_app(tg)
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        app.add_handler(CommandHandler("start", echo))
        app.add_handler(CallbackQueryHandler(on_button))
        async with polling(app):
            incoming = tg.push_text(USER, "你好")
            sent = await tg.wait_for_sent_async(USER, 1, timeout=10)
            tg.push_text(USER, "/start")
            await tg.wait_for_sent_async(USER, 2, timeout=10)
            press = tg.push_callback(USER, "ok:1", message_id=sent[0]["message_id"])
            await tg.wait_for_calls_async("editMessageReplyMarkup", 1, timeout=10)
        assert incoming["message"]["chat"]["id"] == USER

        first = tg.sent(USER)[0]
        assert first["chat_id"] == USER and first["text"] == "echo: 你好"
        assert first["reply_markup"] == KEYBOARD  # form-encoded JSON, decoded by the fake
        assert tg.sent(USER)[1]["text"] == "echo: /start"
        assert [a["action"] for a in tg.chat_actions] == ["typing", "typing"]

        assert tg.callback_answers == [{"callback_query_id": press["callback_query"]["id"],
                                        "text": "收到 Got it"}]
        query = seen[0]
        assert query.data == "ok:1" and query.from_user.id == USER
        assert query.message.message_id == first["message_id"]
        assert query.message.reply_markup.inline_keyboard[0][0].callback_data == "ok:1"
        assert "reply_markup" not in tg.message(USER, first["message_id"])  # keyboard removed

    asyncio.run(main())


def test_contact_photo_and_sticker_arrive_and_photo_downloads(tg: FakeTelegram) -> None:
    image = b"\xff\xd8\xff\xe0fake-jpeg" + bytes(range(256))
    tg.add_file("photo-1", image, file_path="photos/file_7.jpg")
    got: dict[str, Any] = {}

    async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        got["contact"] = update.message.contact
        await update.message.reply_text("thanks")

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        photo = update.message.photo[-1]
        got["photo"] = photo
        got["caption"] = update.message.caption
        got["bytes"] = bytes(await (await context.bot.get_file(photo.file_id)).download_as_bytearray())
        thumb = await context.bot.get_file(update.message.photo[0].file_id)
        got["thumb"] = bytes(await thumb.download_as_bytearray())
        await update.message.reply_text(f"{len(got['bytes'])} bytes")

    async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        got["sticker"] = update.message.sticker
        await update.message.reply_text("text only")

    async def main() -> None:
        app = build_app(tg)
        app.add_handler(MessageHandler(filters.CONTACT, on_contact))
        app.add_handler(MessageHandler(filters.PHOTO, on_photo))
        app.add_handler(MessageHandler(filters.ALL, on_other))
        async with polling(app):
            tg.push_contact(USER, "+8613812345678", contact_user_id=USER)
            tg.push_photo(USER, "photo-1", caption="坏了 broken")
            tg.push_sticker(USER)
            await tg.wait_for_sent_async(USER, 3, timeout=10)

    asyncio.run(main())
    assert got["contact"].phone_number == "+8613812345678" and got["contact"].user_id == USER
    assert got["photo"].file_id == "photo-1" and got["photo"].file_size == len(image)
    assert got["caption"] == "坏了 broken"
    assert got["bytes"] == image and got["thumb"] == image
    assert got["sticker"].emoji == "👍"
    assert [m["text"] for m in tg.sent(USER)] == ["thanks", f"{len(image)} bytes", "text only"]
    assert tg.calls("getFile")[0] == {"file_id": "photo-1"}


def test_injected_send_failures_are_seen_by_the_application(tg: FakeTelegram) -> None:
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(context.error)

    async def main() -> None:
        app = build_app(tg)
        app.add_handler(MessageHandler(filters.TEXT, echo))
        app.add_error_handler(on_error)
        tg.fail_next("sendMessage", times=2)
        async with polling(app):
            for text in ("a", "b", "c"):
                tg.push_text(USER, text)
            sent = await tg.wait_for_sent_async(USER, 1, timeout=10)
            await until(lambda: len(errors) == 2)
        assert [m["text"] for m in sent] == ["echo: c"]
        assert len(tg.calls("sendMessage")) == 3  # failed attempts are recorded too

    asyncio.run(main())
    assert all(isinstance(e, NetworkError) for e in errors)
    assert "Internal Server Error" in str(errors[0])


@pytest.mark.filterwarnings("ignore:.*retry_after.*")  # PTB 22 warns inside RetryAfter()
def test_fault_kinds_map_to_ptb_errors(tg: FakeTelegram) -> None:
    async def main() -> None:
        async with bot_for(tg) as bot:
            tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
            with pytest.raises(BadRequest, match="(?i)chat not found"):
                await bot.send_message(USER, "x")
            tg.fail_next("sendMessage", retry_after=3)
            with pytest.raises(RetryAfter) as flood:
                await bot.send_message(USER, "x")
            assert flood.value._retry_after == dtm.timedelta(seconds=3)
            tg.fail_next("sendMessage", delay=1.0)
            with pytest.raises(TimedOut):
                await bot.send_message(USER, "x", read_timeout=0.3)
            tg.block_user(7)
            with pytest.raises(Forbidden, match="blocked"):
                await bot.send_message(7, "x")
            with pytest.raises(BadRequest, match="too long"):
                await bot.send_message(USER, "字" * 4097)
            assert (await bot.send_message(USER, "ok")).text == "ok"

    asyncio.run(main())
    assert [m["text"] for m in tg.sent(USER)] == ["ok"]


def test_wrong_token_and_unknown_method(tg: FakeTelegram) -> None:
    async def main() -> None:
        with pytest.raises(InvalidToken):
            async with bot_for(tg, token="999:WRONG") as bot:
                await bot.get_me()
        async with bot_for(tg) as bot:
            assert bot.username == "kefu_test_bot"
            with pytest.raises(EndPointNotFound):  # do_api_request's name for a 404
                await bot.do_api_request("noSuchMethod")
    unknown = httpx.post(f"{tg.base_url}{tg.token}/noSuchMethod")
    assert unknown.status_code == 404 and unknown.json() == {
        "ok": False, "error_code": 404, "description": "Not Found: method not found"}

    asyncio.run(main())
    wrong = httpx.post(f"{tg.base_url}999:WRONG/getMe")
    assert wrong.status_code == 401 and wrong.json() == {
        "ok": False, "error_code": 401, "description": "Unauthorized"}


def test_webhook_registration_and_delivery(tg: FakeTelegram) -> None:
    received: list[tuple[str | None, Update]] = []

    async def main() -> None:
        async def hook(request: web.Request) -> web.Response:
            secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
            if secret != "s3cret":
                return web.Response(status=403)
            received.append((secret, Update.de_json(await request.json(), bot)))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/telegram/webhook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/telegram/webhook"
        async with bot_for(tg) as bot:
            assert await bot.set_webhook(url, secret_token="s3cret", allowed_updates=["message"])
            assert tg.webhook is not None and tg.webhook["url"] == url
            assert tg.webhook["secret_token"] == "s3cret"
            assert tg.webhook["allowed_updates"] == ["message"]
            assert (await bot.get_webhook_info()).url == url
            with pytest.raises(Conflict):
                await bot.get_updates(timeout=0)
            update = tg.push_text(USER, "hi")
            assert await tg.post_webhook_async(update, secret_token="s3cret") == 200
            assert await tg.post_webhook_async(update, secret_token="wrong") == 403
            assert await tg.post_webhook_async(update) == 403
            assert await bot.delete_webhook(drop_pending_updates=True)
            assert tg.webhook is None and tg.pending_updates == 0
        await runner.cleanup()

    asyncio.run(main())
    assert len(received) == 1
    assert received[0][1].message.text == "hi" and received[0][1].message.chat.id == USER


def test_get_updates_offsets_long_poll_and_duplicates(tg: FakeTelegram) -> None:
    async def main() -> None:
        async with bot_for(tg) as bot:
            started = time.monotonic()
            assert await bot.get_updates(timeout=1) == ()
            assert time.monotonic() - started >= 0.9

            first = tg.push_text(USER, "one")["update_id"]
            second = tg.push_text(USER, "two")["update_id"]
            assert second == first + 1
            assert [u.update_id for u in await bot.get_updates(limit=1)] == [first]
            assert [u.update_id for u in await bot.get_updates()] == [first, second]  # unconfirmed
            assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [second]
            assert await bot.get_updates(offset=second + 1) == ()

            asyncio.get_running_loop().call_later(0.3, tg.push_text, USER, "late")
            started = time.monotonic()
            late = await bot.get_updates(offset=second + 1, timeout=5)
            assert [u.message.text for u in late] == ["late"]
            assert time.monotonic() - started < 2

            dup = tg.push_raw(late[0].to_dict())
            assert dup["update_id"] == late[0].update_id
            again = await bot.get_updates(offset=late[0].update_id + 1)
            assert [u.update_id for u in again] == [late[0].update_id]  # redelivered once
            assert await bot.get_updates(offset=late[0].update_id + 1) == ()
            assert tg.calls("getUpdates")[-1]["offset"] == late[0].update_id + 1

    asyncio.run(main())


def test_edit_delete_and_commands(tg: FakeTelegram) -> None:
    async def main() -> None:
        async with bot_for(tg) as bot:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
            msg = await bot.send_message(USER, "draft", reply_markup=markup)
            assert msg.from_user.id == bot.id and msg.reply_markup == markup
            edited = await bot.edit_message_text("final", chat_id=USER, message_id=msg.message_id)
            assert edited.text == "final" and edited.reply_markup is None
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_text("final", chat_id=USER, message_id=msg.message_id)
            assert await bot.delete_message(USER, msg.message_id)
            with pytest.raises(BadRequest, match="not found"):
                await bot.delete_message(USER, msg.message_id)
            with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
                big = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
                await bot.send_message(USER, "x", reply_markup=big)

            await bot.set_my_commands([BotCommand("start", "开始"), BotCommand("help", "帮助")],
                                      language_code="zh")
            assert [c.command for c in await bot.get_my_commands(language_code="zh")] == [
                "start", "help"]
            assert await bot.get_my_commands() == ()
            assert await bot.delete_my_commands(language_code="zh")
            assert await bot.get_my_commands(language_code="zh") == ()
            assert await bot.close() and await bot.log_out()

    asyncio.run(main())
    assert tg.message(USER, 1) is None


def test_json_form_multipart_and_get_requests_are_decoded(tg: FakeTelegram) -> None:
    url = f"{tg.base_url}{tg.token}/sendMessage"
    as_json = httpx.post(url, json={"chat_id": "5", "text": "123", "reply_markup": KEYBOARD}).json()
    assert as_json["ok"] and as_json["result"]["chat"]["id"] == 5
    httpx.post(url, data={"chat_id": "5", "text": "[1]", "reply_markup": '{"inline_keyboard": []}'})
    httpx.post(url, data={"chat_id": "5", "text": "multi"}, files={"doc": ("a.txt", b"abc")})
    httpx.get(url, params={"chat_id": "5", "text": "get"})
    sent = tg.sent(5)
    assert [m["text"] for m in sent] == ["123", "[1]", "multi", "get"]
    assert all(m["chat_id"] == 5 for m in sent)
    assert sent[0]["reply_markup"] == KEYBOARD and sent[1]["reply_markup"] == {"inline_keyboard": []}
    assert sent[2]["doc"] == {"filename": "a.txt", "content_type": "text/plain", "data": b"abc"}
    assert tg.wait_for_sent(5, 4, timeout=1) == sent
    with pytest.raises(AssertionError, match="got 4"):
        tg.wait_for_sent(5, 5, timeout=0.3)
