"""Telegram through python-telegram-bot v22: polling by default, webhook with a secret token.

Buttons become inline keyboards (a press is answered, then sent on as its payload); a shared
contact whose ``user_id`` is the sender's verifies them by phone; photos in a handed-off
conversation are stored and attached to the ticket; other non-text messages get a polite
answer. Duplicate updates (same ``update_id``) are handled once (the inbound log).

Private chats only (``telegram_chats.py``): nothing from a group or channel is routed, stored
or verified (``on_elsewhere``), and nothing is sent to one.

Polling runs in one gateway process at a time: the holder of the polling lease
(``polling_lease.py``) polls, the others stand by and take over when it lapses. Every process
can still deliver (sending needs no lease); webhook mode needs no lease at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.gateway import texts
from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming, Outcome
from bot.gateway.polling_lease import PollingLease, SoleLease
from bot.gateway.telegram_chats import addressed, is_private, private_chat_id, private_only
from bot.gateway.verification import verify_phone
from ticketing.conversations import outbox
from ticketing.shop import customers
from ticketing.conversations.chat_history import Entry
from ticketing.core.i18n import language_of_text
from ticketing.core.shared_tokens import same_token

log = logging.getLogger("kefu.gateway.telegram")

CALLBACK_LIMIT = 64  # bytes Telegram keeps of a button's callback_data
HASHED = "h:"


def callback_data(payload: str) -> str:
    """The payload itself when it fits, else a hash the press is resolved from (see below)."""
    if len(payload.encode()) <= CALLBACK_LIMIT:
        return payload
    return HASHED + hashlib.sha256(payload.encode()).hexdigest()[:24]


def keyboard(buttons: list[dict[str, str]]) -> InlineKeyboardMarkup:
    """Short titles (CSAT 1-5) side by side, longer ones one per row."""
    keys = [InlineKeyboardButton(b["title"][:64] or "·", callback_data=callback_data(b["payload"]))
            for b in buttons]
    if len(keys) <= 5 and all(len(b["title"]) <= 4 for b in buttons):
        return InlineKeyboardMarkup([keys])
    return InlineKeyboardMarkup([[key] for key in keys])


def dedupe_key(update: Update) -> str:
    """What makes a redelivered update recognisable, and only it.

    The ``update_id`` alone is not unique for ever (a new bot token starts again, and after a
    week without updates Telegram picks the next one at random), while the inbound log keeps
    keys for good: with the message (chat and message id) or the button press (query id), a
    reused update_id cannot swallow a new message.
    """
    key = f"u{update.update_id}"
    if update.callback_query is not None:
        return f"{key}:q{update.callback_query.id}"
    message = update.effective_message
    if message is not None:
        return f"{key}:m{message.chat_id}:{message.message_id}"
    return key


def contact_keyboard(language: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup([[KeyboardButton(texts.SHARE_PHONE.get(language),
                                                request_contact=True)]],
                               resize_keyboard=True, is_persistent=True)


class TelegramChannel:
    name = "telegram"

    def __init__(self, gateway: Gateway, *, attachments_dir: Path,
                 lease: PollingLease | None = None) -> None:
        self.gateway = gateway
        self.attachments_dir = attachments_dir
        self.lease: PollingLease = lease or SoleLease(gateway.settings.telegram_lease)
        self.application: Application | None = None
        self._standby: asyncio.Task[None] | None = None
        self._offered: set[str] = set()  # chats shown the "share my phone number" keyboard
        self._told: set[int] = set()  # groups and channels told to write privately

    # -- wiring ------------------------------------------------------------------------------

    def build(self) -> Application:
        settings = self.gateway.settings
        builder = ApplicationBuilder().token(settings.telegram_token or "").concurrent_updates(64)
        if settings.telegram_base_url:
            builder = builder.base_url(settings.telegram_base_url)
        if settings.telegram_base_file_url:
            builder = builder.base_file_url(settings.telegram_base_file_url)
        if settings.telegram_webhook_url:
            builder = builder.updater(None)  # updates arrive on the gateway's own HTTP server
        app = builder.build()
        private = filters.ChatType.PRIVATE
        app.add_handler(MessageHandler(~private, self.on_elsewhere))  # first: never routed
        app.add_handler(CommandHandler("start", self.on_start, filters=private))
        app.add_handler(MessageHandler(private & filters.CONTACT, self.on_contact))
        app.add_handler(MessageHandler(private & filters.PHOTO, self.on_photo))
        app.add_handler(MessageHandler(private & filters.TEXT, self.on_text))
        app.add_handler(CallbackQueryHandler(self.on_button))  # no chat filter: checks itself
        app.add_handler(MessageHandler(private, self.on_other))
        app.add_error_handler(self.on_error)
        self.application = app
        return app

    async def start(self) -> None:
        app = self.application or self.build()
        await app.initialize()
        await app.start()
        settings = self.gateway.settings
        if settings.telegram_webhook_url:
            await app.bot.set_webhook(settings.telegram_webhook_url,
                                      secret_token=settings.telegram_webhook_secret,
                                      allowed_updates=Update.ALL_TYPES)
        elif app.updater is not None:
            await self._follow_lease()  # the holder polls at once
            self._standby = asyncio.create_task(self._keep_lease())

    @property
    def polling(self) -> bool:
        app = self.application
        return app is not None and app.updater is not None and app.updater.running

    async def _follow_lease(self) -> None:
        """Poll while this process holds the lease, stand by while another one does."""
        app = self.application
        if app is None or app.updater is None:
            return
        held = await self.lease.acquire()
        if held and not self.polling:
            log.info("polling Telegram (this process holds the lease)")
            await app.updater.start_polling(poll_interval=0.0, timeout=10,
                                            allowed_updates=Update.ALL_TYPES)
        elif not held and self.polling:
            log.warning("polling lease lost: standing by")
            await app.updater.stop()

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease.ttl / 3)
            try:
                await self._follow_lease()
            except Exception:  # keep trying: a standby must be able to take over later
                log.exception("polling lease check failed")

    async def stop(self) -> None:
        if self._standby is not None:
            self._standby.cancel()
            await asyncio.gather(self._standby, return_exceptions=True)
            self._standby = None
        app = self.application
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        await self.lease.release()  # after the last poll: a standby takes over at once
        if app.running:
            await app.stop()
        await app.shutdown()

    def accepts(self, secret: str | None) -> bool:
        """Whether a webhook call carries the secret token (compared in constant time): the
        HTTP server asks before it reads the body."""
        return self.application is not None and same_token(
            self.gateway.settings.telegram_webhook_secret, secret)

    async def webhook(self, body: dict[str, Any], secret: str | None) -> int:
        """One update posted by Telegram; 403 unless the secret token matches."""
        if not self.accepts(secret):
            return 403
        update = Update.de_json(body, self.application.bot)
        await self.application.update_queue.put(update)
        return 200

    # -- Channel protocol --------------------------------------------------------------------

    async def deliver(self, external_id: str, entry: Entry) -> None:
        chat_id = private_chat_id(external_id)
        bot = self._bot()
        markup: Any = None
        offered = False  # the chat sees the contact keyboard (or its removal) with this message
        if entry.buttons:
            markup = keyboard(entry.buttons)
        elif entry.kind == "verified":
            markup = ReplyKeyboardRemove()
            offered = True
        elif external_id not in self._offered and not await self._verified(external_id):
            markup = contact_keyboard(language_of_text(entry.text) or "zh")
            offered = True
        text = entry.text if entry.kind != "agent_reply" or not entry.agent else \
            f"👤 {entry.agent}: {entry.text}"
        await bot.send_message(chat_id=chat_id, text=text[:4096], reply_markup=markup)
        if offered:  # only once it was shown: a failed send is retried with the keyboard
            self._offered.add(external_id)

    async def typing(self, external_id: str, on: bool) -> None:
        if on:
            await self._bot().send_chat_action(chat_id=private_chat_id(external_id),
                                               action=ChatAction.TYPING)

    def _bot(self) -> Any:
        if self.application is None:
            raise RuntimeError("the Telegram channel is not started")
        return self.application.bot

    async def _verified(self, external_id: str) -> bool:
        conversation = customers.conversation_id_for(self.name, external_id)
        return await self.gateway.db(lambda s: customers.customer_for_conversation(
            s, conversation_id=conversation) is not None)

    # -- handlers ----------------------------------------------------------------------------

    def _incoming(self, update: Update, **fields: Any) -> Incoming:
        """The customer's message, keyed on their private chat (refused for any other)."""
        user = update.effective_user
        chat = update.effective_chat
        if chat is None or not is_private(update):
            raise ValueError("only a private Telegram chat is a customer's conversation")
        return Incoming(channel=self.name, external_id=str(chat.id),
                        dedupe_key=dedupe_key(update),
                        language=user.language_code if user else None, **fields)

    async def _reply(self, update: Update, outcome: Outcome) -> None:
        if outcome.reply and update.effective_chat is not None:
            await self._bot().send_message(chat_id=update.effective_chat.id, text=outcome.reply)

    async def on_start(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start is a greeting; the assistant answers and the contact keyboard is offered."""
        outcome = await self.gateway.receive(self._incoming(update, text="/start",
                                                            payload="/greet"))
        await self._reply(update, outcome)

    async def on_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        text = update.effective_message.text or ""
        if text.startswith("/"):  # other commands are words, not Rasa intent payloads
            text = text[1:].split("@", 1)[0] or text
        outcome = await self.gateway.receive(self._incoming(update, text=text))
        await self._reply(update, outcome)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press; one in a group (an old answer's keyboard) only stops the spinner
        and tells the presser alone, in a toast, to write privately."""
        query = update.callback_query
        if not is_private(update):
            await query.answer(text=private_only(context.bot.username, link=False))
            return
        await query.answer()
        data = query.data or ""
        title, payload = data, data
        markup = query.message.reply_markup if query.message is not None else None
        for row in getattr(markup, "inline_keyboard", ()) or ():
            for button in row:
                if button.callback_data == data:
                    title = button.text
        if data.startswith(HASHED):
            payload = await self._resolve(str(update.effective_chat.id), data) or title
        outcome = await self.gateway.receive(self._incoming(update, text=title, payload=payload))
        await self._reply(update, outcome)

    async def _resolve(self, external_id: str, hashed: str) -> str | None:
        """The long payload behind a hashed button, from the conversation's recent messages."""
        conversation = customers.conversation_id_for(self.name, external_id)

        def work(session: Any) -> str | None:
            for row in outbox.recent(session, conversation_id=conversation):
                for button in (row.payload or {}).get("buttons") or []:
                    if callback_data(str(button.get("payload", ""))) == hashed:
                        return str(button["payload"])
            return None

        return await self.gateway.db(work)

    async def on_contact(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        contact = message.contact
        own = contact.user_id is not None and contact.user_id == update.effective_user.id
        await verify_phone(self.gateway, self._incoming(update, text="[contact]"),
                           phone=contact.phone_number, own=own)

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        photo = message.photo[-1]  # the largest size
        attachment: dict[str, Any] = {"kind": "photo", "telegram_file_id": photo.file_id}
        try:
            data = bytes(await (await context.bot.get_file(photo.file_id)).download_as_bytearray())
            digest = hashlib.sha256(data).hexdigest()
            self.attachments_dir.mkdir(parents=True, exist_ok=True)
            path = self.attachments_dir / f"{digest}.jpg"
            path.write_bytes(data)
            attachment.update(path=str(path), sha256=digest, bytes=len(data))
        except Exception as exc:  # keep the reference; an agent can still fetch it by file id
            log.warning("could not download a photo: %s", exc)
        outcome = await self.gateway.receive(self._incoming(
            update, text=message.caption or "", kind="photo", attachments=[attachment]))
        await self._reply(update, outcome)

    async def on_other(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None:
            return
        outcome = await self.gateway.receive(self._incoming(update, kind="unsupported"))
        await self._reply(update, outcome)

    async def on_elsewhere(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A group's or channel's message: never routed, stored or verified.

        Only someone addressing the bot (a command for it, a mention, a reply to it) is told to
        write privately, and a chat is told once per process: a shop's bot must not chime in on
        a customer group's chatter or repeat itself there; the notice stays in the chat's
        history for whoever tries next.
        """
        message = update.message or update.channel_post  # edits are not someone new asking
        chat = update.effective_chat
        if message is None or chat is None or chat.id in self._told:
            return
        if not addressed(message, context.bot):
            return
        self._told.add(chat.id)  # before sending: a failure is not retried in the group
        try:
            await context.bot.send_message(chat_id=chat.id,
                                           text=private_only(context.bot.username))
        except TelegramError as exc:  # e.g. not allowed to post in that channel
            log.warning("could not tell %s chat %s to write privately: %s", chat.type,
                        chat.id, exc)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update %r failed: %s", getattr(update, "update_id", None),
                  context.error, exc_info=context.error)
        self.gateway.metrics.errors.labels("telegram").inc()

